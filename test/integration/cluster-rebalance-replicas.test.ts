// Integration: growing and shrinking a cluster of replicated shards (deploy/local-cluster.sh
// --nodes 6 --replicas 2 --active 2: shards 1 and 2 in the proxy's ring, shard 3 running
// outside it; a real HAProxy and a real etcd). `ringstream rebalance --add shard-3` moves to
// shard 3 the streams the ring now gives it; they are replicated there: after its leader is
// SIGKILLed, every stream still reads back whole through the proxy and takes appends.
// `--remove shard-3` moves them back to shards 1 and 2.

import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, test } from 'vitest'
import { eventually } from '../subscriptions/children.js'
import { haproxyMissing, useLocalCluster } from './local-cluster.js'

const CLI = fileURLToPath(new URL('../../bin/ringstream.js', import.meta.url))
const STREAMS = 24
const etcdMissing = ((): string | undefined => {
  try {
    readFileSync('/usr/bin/etcd')
    return undefined
  } catch {
    if (process.env.RINGSTREAM_REQUIRE_ETCD === '1') throw new Error('RINGSTREAM_REQUIRE_ETCD=1 but /usr/bin/etcd is not installed')
    return 'etcd is not installed (Debian: apt-get install etcd-server)'
  }
})()

describe.skipIf((haproxyMissing ?? etcdMissing) !== undefined)('growing and shrinking a cluster of replicated shards', () => {
  const { dataDir, proxy, nodeUrl } = useLocalCluster(6, ['--replicas', '2', '--active', '2'], ['--lease-ttl-ms', '1000'])
  const url = (path: string): string => `${proxy()}/v1/stream/${path}`
  const shardOf = (node: string): number => Math.ceil((Number(/:(\d+)$/.exec(node)![1]) - Number(/:(\d+)$/.exec(proxy())![1])) / 2)

  async function rebalance(step: '--add' | '--remove'): Promise<string> {
    const nodes = [1, 2, 3].map((s) => `shard-${s}=${nodeUrl(2 * s - 1)}|${nodeUrl(2 * s)}`).join(',')
    const { stdout } = await promisify(execFile)('node', [CLI, 'rebalance', '--proxy', proxy(), '--proxy-admin', join(dataDir, 'haproxy.sock'), '--nodes', nodes, step, 'shard-3'])
    return stdout.trim()
  }

  /** Each stream's shard, as the node answering through the proxy names itself. */
  async function shards(paths: readonly string[]): Promise<number[]> {
    return Promise.all(paths.map(async (path) => shardOf((await fetch(url(path), { method: 'HEAD' })).headers.get('ringstream-node')!)))
  }

  async function expectWhole(paths: readonly string[], appends: number): Promise<void> {
    for (const path of paths) {
      const read = await fetch(`${url(path)}?offset=-1`)
      expect(read.status, path).toBe(200)
      expect(await read.text(), path).toBe(Array.from({ length: appends }, (_, n) => `${path}#${n};`).join(''))
    }
  }

  test('2 → 3 → 2 shards of 2 replicas: streams move to shard 3 and back, whole, and survive the loss of its leader', async () => {
    const paths = Array.from({ length: STREAMS }, (_, i) => `replicated/s-${String(i).padStart(2, '0')}`)
    const append = async (path: string, n: number): Promise<void> => {
      const res = await fetch(url(path), { method: 'POST', headers: { 'content-type': 'text/plain' }, body: `${path}#${n};` })
      expect(res.status, path).toBe(204)
    }
    // The shards' first leaders may still be being elected.
    await eventually(async () => ((await fetch(url(paths[0]!), { method: 'PUT', headers: { 'content-type': 'text/plain' } })).status === 201 ? true : undefined), 'the first create', 20_000)
    for (const path of paths.slice(1)) expect((await fetch(url(path), { method: 'PUT', headers: { 'content-type': 'text/plain' } })).status).toBe(201)
    for (let n = 0; n < 3; n++) for (const path of paths) await append(path, n)
    expect(new Set(await shards(paths))).toEqual(new Set([1, 2]))

    const grown = await rebalance('--add')
    expect(grown).toMatch(/added shard-3: [1-9]\d* streams moved/)
    const placed = await shards(paths)
    expect(placed).toContain(3)
    await expectWhole(paths, 3)

    // Shard 3's leader dies: its follower takes over with every moved stream.
    const moved = paths.filter((_, i) => placed[i] === 3)
    const leader = (await fetch(url(moved[0]!), { method: 'HEAD' })).headers.get('ringstream-node')!
    const cluster = JSON.parse(readFileSync(join(dataDir, 'cluster.json'), 'utf8')) as { nodes: Array<{ url: string; pid: number }> }
    process.kill(cluster.nodes.find((node) => node.url === leader)!.pid, 'SIGKILL')
    // (An append the dying leader took but could not answer is retried as an idempotent
    // producer would: Stream-Seq makes a second copy a 409, not a duplicate.)
    await eventually(async () => {
      const res = await fetch(url(moved[0]!), { method: 'POST', headers: { 'content-type': 'text/plain', 'stream-seq': '3' }, body: `${moved[0]}#3;` }).catch(() => undefined)
      return res?.status === 204 || res?.status === 409 ? true : undefined
    }, 'shard 3 to take appends again', 20_000)
    for (const path of paths.filter((path) => path !== moved[0])) await append(path, 3)
    await expectWhole(paths, 4)

    const shrunk = await rebalance('--remove')
    expect(shrunk).toMatch(/removed shard-3: [1-9]\d* streams moved/)
    expect(new Set(await shards(paths))).toEqual(new Set([1, 2]))
    for (const path of paths) await append(path, 4)
    await expectWhole(paths, 5)
    console.log(`replicated rebalance test: ${grown}; ${shrunk}`)
  }, 120_000)
})
