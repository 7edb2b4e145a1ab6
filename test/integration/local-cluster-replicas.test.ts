// deploy/local-cluster.sh --replicas 3: one shard of three replicas behind a real HAProxy,
// with a real etcd (Debian's etcd-server) electing its leader. Streams written through the
// proxy read back through it; one node leads and two follow in the same epoch; a SIGKILLed
// leader is replaced within seconds (appends through the proxy work again, nothing
// acknowledged is lost) and comes back as a follower; SIGTERM leaves no process behind.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { accessSync, constants, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { freePortBelowEphemeral } from '../helpers-ports.js'
import { eventually } from '../subscriptions/children.js'

const SCRIPT = fileURLToPath(new URL('../../deploy/local-cluster.sh', import.meta.url))
const ETCD_BIN = '/usr/bin/etcd'
const NODES = 3
/** The script puts etcd's client and peer ports this far above the proxy's. */
const ETCD_PORT_OFFSETS = [1000, 1001]
/** Linux's ephemeral range starts here: a killed node's port must not be taken meanwhile. */
const EPHEMERAL_PORT_MIN = 32768
/** A lease shorter than the script's restart delay plus a node's start: the survivors elect
 * a leader before the killed one is back (else its newer log could win it the shard again). */
const LEASE_TTL_MS = 1000
/** What the brief promises for a leader's death: lease, election, proxy repointed. */
const FAILOVER_MS_MAX = 6000

interface ClusterJson {
  proxy: string
  etcd: string | null
  nodes: Array<{ id: string; url: string; pid: number | null; shard: string | null }>
}
interface Status {
  node: string
  role: 'leader' | 'follower' | 'candidate'
  epoch: number
  leader: { nodeId: string; url: string } | null
}

function missingTools(): string | undefined {
  try {
    execFileSync('haproxy', ['-v'], { stdio: 'ignore' })
  } catch {
    return 'haproxy is not installed (Debian: apt-get install haproxy)'
  }
  try {
    accessSync(ETCD_BIN, constants.X_OK)
  } catch {
    return `${ETCD_BIN} is missing (Debian: apt-get install etcd-server)`
  }
  return undefined
}
const missing = missingTools()

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer()
    probe.once('error', () => resolve(false))
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)))
  })
}

/** A proxy port whose node and etcd ports are free too, all below the ephemeral range. */
async function clusterPort(): Promise<number> {
  for (;;) {
    const port = await freePortBelowEphemeral()
    const others = [...Array.from({ length: NODES }, (_, i) => port + 1 + i), ...ETCD_PORT_OFFSETS.map((offset) => port + offset)]
    if (Math.max(...others) >= EPHEMERAL_PORT_MIN) continue
    if ((await Promise.all(others.map(portFree))).every(Boolean)) return port
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Processes whose command line names `dir`: the script and its subshells, the nodes, etcd, HAProxy. */
function processesUsing(dir: string): number[] {
  const found: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(dir)) found.push(Number(entry))
    } catch {
      // gone meanwhile
    }
  }
  return found
}

describe.skipIf(missing !== undefined)(`deploy/local-cluster.sh --replicas 3${missing === undefined ? '' : ` (skipped: ${missing})`}`, () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'ringstream-replicas-'))
  let script: ChildProcess
  let port = 0
  let log = ''
  const seenPids = new Set<number>()
  const proxy = (): string => `http://127.0.0.1:${port}`
  const stream = (path: string, base = proxy()): string => `${base}/v1/stream/${path}`
  const path = `replicated-${process.pid}`
  const written: string[] = []

  const clusterJson = (): ClusterJson => {
    const json = JSON.parse(readFileSync(join(dataDir, 'cluster.json'), 'utf8')) as ClusterJson
    for (const node of json.nodes) if (node.pid !== null) seenPids.add(node.pid)
    return json
  }
  const statuses = async (): Promise<Status[]> =>
    Promise.all(clusterJson().nodes.map(async (node) => (await (await fetch(`${node.url}/statusz`, { signal: AbortSignal.timeout(2000) })).json()) as Status))
  /** One leader and two followers of it, in one epoch (what a settled shard looks like). */
  const settled = async (): Promise<{ leader: Status; followers: Status[] } | undefined> => {
    const all = await statuses().catch(() => undefined)
    if (all === undefined) return undefined
    const leaders = all.filter((status) => status.role === 'leader')
    const followers = all.filter((status) => status.role === 'follower')
    if (leaders.length !== 1 || followers.length !== NODES - 1) return undefined
    const leader = leaders[0]!
    if (!followers.every((follower) => follower.epoch === leader.epoch && follower.leader?.nodeId === leader.node)) return undefined
    return { leader, followers }
  }
  const append = async (body: string, signal?: AbortSignal): Promise<Response> => {
    const response = await fetch(stream(path), { method: 'POST', headers: { 'content-type': 'text/plain' }, body, signal })
    if (response.status === 204) written.push(body)
    return response
  }

  beforeAll(async () => {
    port = await clusterPort()
    script = spawn(SCRIPT, ['--nodes', String(NODES), '--replicas', '3', '--port', String(port), '--data-dir', dataDir, '--', '--lease-ttl-ms', String(LEASE_TTL_MS)], { stdio: ['ignore', 'pipe', 'pipe'] })
    script.stdout!.on('data', (chunk: Buffer) => (log += chunk.toString()))
    script.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()))
    const ready = `cluster ready on ${proxy()} (3 nodes, 1 shards of 3 replicas)`
    await eventually(async () => (log.includes(ready) ? true : script.exitCode !== null ? Promise.reject(new Error(`the script exited: ${log}`)) : undefined), `the cluster to start: ${log}`, 60_000)
  }, 90_000)

  afterAll(async () => {
    // CLUSTER_LOG=FILE keeps what the script, the nodes and HAProxy printed.
    if (process.env.CLUSTER_LOG !== undefined) writeFileSync(process.env.CLUSTER_LOG, log)
    if (script !== undefined && script.exitCode === null && script.signalCode === null) {
      const exited = once(script, 'exit')
      script.kill('SIGTERM')
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 20_000))])
    }
    // A failed test must not leave a cluster running.
    for (const pid of processesUsing(dataDir)) process.kill(pid, 'SIGKILL')
    rmSync(dataDir, { recursive: true, force: true })
  }, 60_000)

  test('cluster.json names the proxy, etcd and three live replicas of shard 1', () => {
    const json = clusterJson()
    expect(json.proxy).toBe(proxy())
    expect(json.etcd).toBe(`http://127.0.0.1:${port + ETCD_PORT_OFFSETS[0]!}`)
    expect(json.nodes.map((node) => [node.id, node.url, node.shard])).toEqual(
      Array.from({ length: NODES }, (_, i) => [`node-${i + 1}`, `http://127.0.0.1:${port + i + 1}`, '1']),
    )
    for (const node of json.nodes) expect(node.pid !== null && alive(node.pid), `${node.id} pid ${node.pid}`).toBe(true)
  })

  test('a stream written through the proxy reads back through it', async () => {
    expect((await fetch(stream(path), { method: 'PUT', headers: { 'content-type': 'text/plain' } })).status).toBe(201)
    for (const body of ['abc', 'def', 'ghi']) expect((await append(body)).status).toBe(204)
    expect(await (await fetch(stream(path))).text()).toBe('abcdefghi')
  })

  test('one replica leads, two follow it in the same epoch', async () => {
    const shard = await eventually(settled, `one leader and two followers: ${JSON.stringify(await statuses().catch((error: Error) => error.message))}`, 10_000)
    expect(shard.followers.map((follower) => follower.epoch)).toEqual([shard.leader.epoch, shard.leader.epoch])
  })

  test('a follower passes a watch (cluster-wide subscriptions) through to its leader, live', async () => {
    const { followers } = await eventually(settled, 'a settled shard', 10_000)
    const follower = clusterJson().nodes.find((node) => node.id === followers[0]!.node)!
    const aborted = new AbortController()
    const res = await fetch(`${follower.url}/v1/stream/__ds/watch`, { method: 'POST', body: JSON.stringify({ streams: [path] }), signal: aborted.signal })
    expect(res.status).toBe(200)
    const reader = res.body!.getReader()
    let text = ''
    const readUntil = async (needle: string): Promise<void> => {
      while (!text.includes(needle)) text += new TextDecoder().decode((await reader.read()).value)
    }
    // Listed as the leader has it (the follower's copy may lag), then a change as it happens.
    await readUntil('{"synced":true}\n')
    const listed = JSON.parse(text.split('\n')[0]!) as { p: string; t: number }
    expect(listed.p).toBe(path)
    expect((await append('jkl')).status).toBe(204)
    await readUntil(`"t":${listed.t + 3}}`)
    aborted.abort()
  })

  test('a read through a follower (passed to its leader) of a compressible stream is whole, gzip asked or not', async () => {
    const { followers } = await eventually(settled, 'a settled shard', 10_000)
    const follower = clusterJson().nodes.find((node) => node.id === followers[0]!.node)!
    const json = `json-${process.pid}`
    expect((await fetch(stream(json), { method: 'PUT', headers: { 'content-type': 'application/json' } })).status).toBe(201)
    const items = Array.from({ length: 200 }, (_, i) => ({ i, text: 'compressible '.repeat(4) }))
    expect((await fetch(stream(json), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(items) })).status).toBe(204)
    for (const encoding of ['gzip', 'identity']) {
      const res = await fetch(`${follower.url}/v1/stream/${json}?offset=-1`, { headers: { 'accept-encoding': encoding } })
      expect(res.status).toBe(200)
      expect(await res.json(), `accept-encoding: ${encoding}`).toEqual(items)
    }
  })

  test('SIGKILL of the leader: appends through the proxy resume within 6 s with nothing lost; it comes back as a follower', { timeout: 60_000 }, async () => {
    const before = (await eventually(settled, 'a settled shard', 10_000)).leader
    const victim = clusterJson().nodes.find((node) => node.id === before.node)!
    const victimPid = victim.pid!
    process.kill(victimPid, 'SIGKILL')
    const killedAt = Date.now()

    // Each attempt has its own body: one that fails may still land, and must not be mistaken for another.
    let resumedMs = -1
    for (let attempt = 0; Date.now() - killedAt < FAILOVER_MS_MAX; attempt++) {
      const response = await append(`[after-${attempt}]`, AbortSignal.timeout(1000)).catch(() => undefined)
      if (response?.status === 204) {
        resumedMs = Date.now() - killedAt
        break
      }
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(resumedMs, `an append through the proxy succeeded within ${FAILOVER_MS_MAX} ms of the kill:\n${log.slice(-3000)}`).toBeGreaterThanOrEqual(0)
    const content = await (await fetch(stream(path))).text()
    expect(content.startsWith('abcdefghi'), content).toBe(true)
    expect(content.endsWith(written.at(-1)!), content).toBe(true)

    // The script starts the killed node again (a new pid in cluster.json); it follows the new leader.
    const restartedPid = await eventually(async () => {
      const pid = clusterJson().nodes.find((node) => node.id === victim.id)!.pid
      return pid !== null && pid !== victimPid && alive(pid) ? pid : undefined
    }, 'a new pid for the killed node in cluster.json', 15_000)
    expect(restartedPid).not.toBe(victimPid)
    const after = await eventually(async () => {
      const shard = await settled()
      return shard !== undefined && shard.followers.some((follower) => follower.node === victim.id) ? shard : undefined
    }, `${victim.id} back as a follower: ${JSON.stringify(await statuses().catch((error: Error) => error.message))}`, 20_000)
    expect(after.leader.node).not.toBe(victim.id)
    expect(after.leader.epoch).toBeGreaterThan(before.epoch)
    expect(log).toContain(`${victim.id} exited; starting it again`)

    // Everything acknowledged, read through the proxy and through the rejoined node (which forwards).
    expect((await append('[end]')).status).toBe(204)
    for (const base of [proxy(), victim.url]) {
      const read = await (await fetch(stream(path, base))).text()
      let position = 0
      for (const body of written) {
        const at = read.indexOf(body, position)
        expect(at, `${body} in what ${base} returns: ${read}`).toBeGreaterThanOrEqual(0)
        position = at + body.length
      }
      expect(read.endsWith('[end]')).toBe(true)
    }
    console.log(`local-cluster --replicas 3: appends resumed ${resumedMs} ms after the leader's SIGKILL`)
  })

  test('SIGTERM stops HAProxy, the nodes and etcd: no process is left', { timeout: 40_000 }, async () => {
    clusterJson()
    const etcdPid = Number(readFileSync(join(dataDir, 'etcd.pid'), 'utf8'))
    const haproxyPid = Number(readFileSync(join(dataDir, 'haproxy.pid'), 'utf8'))
    expect(alive(etcdPid) && alive(haproxyPid)).toBe(true)
    const exited = once(script, 'exit')
    script.kill('SIGTERM')
    const [code] = (await exited) as [number | null]
    expect(code).toBe(0)
    for (const pid of [...seenPids, etcdPid, haproxyPid]) expect(alive(pid), `pid ${pid} is gone`).toBe(false)
    expect(processesUsing(dataDir)).toEqual([])
  })
})
