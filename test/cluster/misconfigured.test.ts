// Bad replication configuration gets a clear error, with real processes and a real etcd:
// flags that cannot work are refused at start; a node whose etcd is unreachable starts,
// answers /readyz 503 and says why in its log and /statusz; a second node with an id in use
// is refused; a data directory that belongs to another shard is refused at start.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { freePortBelowEphemeral } from '../helpers-ports.js'
import { output, ringstream, useChildren } from '../process.js'
import { type EtcdProcess, startEtcd } from './etcd-harness.js'
import { TestCluster, replicationTestable, sleep } from './cluster-harness.js'

const spawnChild = useChildren()
const dir = mkdtempSync(join(tmpdir(), 'ringstream-misconfigured-'))
let etcd: EtcdProcess

async function statusOf(url: string): Promise<{ problem: string | null; role: string } | undefined> {
  try {
    return (await (await fetch(`${url}/statusz`, { signal: AbortSignal.timeout(500) })).json()) as { problem: string | null; role: string }
  } catch {
    return undefined
  }
}

async function waitFor<T>(probe: () => Promise<T | undefined>, ok: (value: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: T | undefined
  while (Date.now() < deadline) {
    last = await probe()
    if (last !== undefined && ok(last)) return last
    await sleep(100)
  }
  throw new Error(`not within ${timeoutMs} ms; last: ${JSON.stringify(last)}`)
}

describe.skipIf(!replicationTestable())('bad replication configuration', () => {
  beforeAll(async () => {
    etcd = await startEtcd()
  }, 30_000)

  afterAll(async () => {
    await etcd?.stop()
    rmSync(dir, { recursive: true, force: true })
  }, 30_000)

  test('flags that cannot work are refused at start, each with its reason', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--replicas', '3', '--node-id', 'a'], /--replicas above 1 needs --etcd/],
      [['--replicas', '3', '--etcd', etcd.url], /needs --node-id/],
      [['--replicas', '3', '--etcd', etcd.url, '--node-id', 'a', '--durability', 'memory'], /needs a durable class/],
      [['--replicas', '0'], /--replicas must be 1 \.\. 9/],
      [['--replicas', '3', '--etcd', 'etcd:2379', '--node-id', 'a'], /etcd URLs must be http/],
    ]
    for (const [args, reason] of cases) {
      const exited = await output(spawnChild(ringstream(['--port', '0', '--data-dir', join(dir, 'flags'), ...args])))
      expect(exited.code, args.join(' ')).not.toBe(0)
      expect(exited.stderr, args.join(' ')).toMatch(reason)
    }
  })

  test('etcd unreachable at start: the node starts, /readyz is 503 and /statusz and the log say why', async () => {
    const port = await freePortBelowEphemeral()
    const url = `http://127.0.0.1:${port}`
    const child = spawnChild(ringstream(['--port', String(port), '--data-dir', join(dir, 'no-etcd'), '--etcd', 'http://127.0.0.1:9', '--replicas', '3', '--node-id', 'lonely', '--node-url', url]))
    let log = ''
    child.stdout!.on('data', (chunk: Buffer) => (log += chunk.toString()))
    child.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()))
    const status = await waitFor(() => statusOf(url), (value) => /etcd unreachable/.test(value.problem ?? ''))
    expect(status.role).toBe('candidate')
    const ready = await fetch(`${url}/readyz`)
    expect(ready.status).toBe(503)
    expect(await ready.text()).toMatch(/etcd unreachable/)
    const append = await fetch(`${url}/v1/stream/x`, { method: 'PUT' })
    expect(append.status).toBe(503)
    expect(append.headers.get('retry-after')).toBe('1')
    expect(((await append.json()) as { error: { code: string } }).error.code).toBe('NO_LEADER')
    expect(log).toMatch(/etcd unreachable/)
  })

  test('a second node with an id in use is refused, and says so', async () => {
    const cluster = await TestCluster.start({ replicas: 3, etcd })
    try {
      await cluster.leader()
      const port = await freePortBelowEphemeral()
      const url = `http://127.0.0.1:${port}`
      spawnChild(ringstream(['--port', String(port), '--data-dir', join(dir, 'twin'), '--etcd', etcd.url, '--replicas', '3', '--node-id', 'n1', '--node-url', url]))
      const status = await waitFor(() => statusOf(url), (value) => /already used/.test(value.problem ?? ''))
      expect(status.problem).toMatch(/node id n1 is already used by a live node at http:\/\/127\.0\.0\.1:\d+/)
      // The shard goes on as it was.
      await cluster.leader()
    } finally {
      await cluster.stop()
      cluster.remove()
    }
  }, 60_000)

  test('a data directory of another shard is refused at start', async () => {
    const port = await freePortBelowEphemeral()
    const data = join(dir, 'moved')
    const first = spawnChild(ringstream(['--port', String(port), '--data-dir', data, '--etcd', etcd.url, '--replicas', '3', '--node-id', 'mover', '--shard', 'a', '--node-url', `http://127.0.0.1:${port}`]))
    // Up as a replica of shard a (its data directory says so from then on).
    await waitFor(() => statusOf(`http://127.0.0.1:${port}`), (value) => value.role !== undefined)
    const firstExit = output(first)
    first.kill('SIGTERM')
    await firstExit
    const exited = await output(spawnChild(ringstream(['--port', String(port), '--data-dir', data, '--etcd', etcd.url, '--replicas', '3', '--node-id', 'mover', '--shard', 'b'])))
    expect(exited.code).not.toBe(0)
    expect(exited.stdout + exited.stderr).toMatch(/holds the data of shard "a", not "b"/)
  }, 30_000)
})
