// Chaos with real processes: a 3-replica shard (real etcd, real HAProxy repointed by each
// new leader) under load through the proxy — idempotent producers (binary), a plain JSON
// appender, streams created, closed, forked and deleted — while its leader is SIGKILLed
// again and again (CHAOS_KILLS, 50 in CI) and restarted like a service. At the end every
// acknowledged append is there exactly once, in order, byte for byte; every replica's own
// copy of every stream is identical (each data directory opened alone afterwards); and the
// failover time (kill → first 2xx append through the proxy) is reported.

import { randomBytes } from 'node:crypto'
import { afterAll, describe, expect, test } from 'vitest'
import { createServer } from '../../src/server.js'
import { type TestCluster, haproxyAvailable, replicationTestable, sleep, useCluster } from './cluster-harness.js'

const KILLS = Number(process.env.CHAOS_KILLS ?? 50)
const PRODUCERS = 3

let cluster: TestCluster
let stop = false


/** A request through the proxy, retried while the shard has no leader (503, refused). */
async function send(path: string, init: RequestInit, retryOn = (status: number) => status === 503 || status === 502): Promise<Response> {
  for (;;) {
    try {
      const response = await fetch(`${cluster.proxyUrl}/v1/stream/${path}`, { ...init, signal: AbortSignal.timeout(10_000) })
      if (!retryOn(response.status)) return response
      await response.arrayBuffer()
    } catch {
      // The connection went with a node: retry.
    }
    await sleep(20)
  }
}

interface Acked {
  producers: Buffer[][]
  plain: number[]
  closed: string[]
  forks: Array<{ path: string; bytes: Buffer }>
  deleted: string[]
  probes: number[]
}

const acked: Acked = { producers: [], plain: [], closed: [], forks: [], deleted: [], probes: [] }

async function producer(index: number): Promise<void> {
  const path = `p-${index}`
  const list: Buffer[] = []
  acked.producers[index] = list
  for (let seq = 0; !stop; seq++) {
    const body = randomBytes(64 + Math.floor(Math.random() * 448))
    const headers = { 'content-type': 'application/octet-stream', 'producer-id': `w${index}`, 'producer-epoch': '0', 'producer-seq': String(seq) }
    const response = await send(path, { method: 'POST', headers, body })
    if (response.status !== 200 && response.status !== 204) throw new Error(`producer ${index} seq ${seq}: ${response.status} ${await response.text()}`)
    list.push(body)
  }
}

async function plain(): Promise<void> {
  for (let k = 0; !stop; k++) {
    try {
      const response = await fetch(`${cluster.proxyUrl}/v1/stream/j`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ k }), signal: AbortSignal.timeout(10_000) })
      if (response.status === 204 || response.status === 200) acked.plain.push(k)
      else if (response.status !== 503 && response.status !== 502) throw new Error(`plain append ${k}: ${response.status} ${await response.text()}`)
    } catch (error) {
      if ((error as Error).message.startsWith('plain append')) throw error
    }
    await sleep(5)
  }
}

async function probe(): Promise<void> {
  while (!stop) {
    try {
      const response = await fetch(`${cluster.proxyUrl}/v1/stream/probe`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x', signal: AbortSignal.timeout(5000) })
      if (response.ok) acked.probes.push(performance.now())
    } catch {
      // down: the next try measures
    }
    await sleep(10)
  }
}

/** Iteration i's lifecycle: a closed stream, a fork of it, a deleted stream. */
async function lifecycle(i: number): Promise<void> {
  const closedPath = `c-${i}`
  const content = randomBytes(100)
  expect((await send(closedPath, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: content })).status).toBeLessThan(300)
  expect((await send(closedPath, { method: 'POST', headers: { 'stream-closed': 'true' } })).status).toBeLessThan(300)
  acked.closed.push(closedPath)
  const forkPath = `f-${i}`
  expect((await send(forkPath, { method: 'PUT', headers: { 'content-type': 'application/octet-stream', 'stream-forked-from': closedPath }, body: Buffer.from('tail') })).status).toBeLessThan(300)
  acked.forks.push({ path: forkPath, bytes: Buffer.concat([content, Buffer.from('tail')]) })
  const deletedPath = `d-${i}`
  expect((await send(deletedPath, { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: 'doomed' })).status).toBeLessThan(300)
  const deleted = await send(deletedPath, { method: 'DELETE' })
  expect([204, 404]).toContain(deleted.status)
  acked.deleted.push(deletedPath)
}

/** Everything the test was told was kept, read from `base` (the proxy, or one replica alone). */
async function verify(base: string, where: string): Promise<Map<string, Buffer>> {
  const seen = new Map<string, Buffer>()
  const read = async (path: string): Promise<Response> => fetch(`${base}/v1/stream/${path}?offset=-1`)
  for (let index = 0; index < PRODUCERS; index++) {
    const response = await read(`p-${index}`)
    const bytes = Buffer.from(await response.arrayBuffer())
    seen.set(`p-${index}`, bytes)
    // Exactly the acknowledged payloads, in order: none lost, none twice (an unacknowledged
    // last one may follow if the test stopped while it was being retried).
    const expected = Buffer.concat(acked.producers[index]!)
    expect(bytes.subarray(0, expected.length).equals(expected), `${where}: producer ${index}`).toBe(true)
  }
  const j = await read('j')
  const messages = (await j.json()) as Array<{ k: number }>
  const ks = messages.map((message) => message.k)
  expect(new Set(ks).size, `${where}: a plain append twice`).toBe(ks.length)
  const present = new Set(ks)
  expect(acked.plain.filter((k) => !present.has(k)), `${where}: acknowledged plain appends missing`).toEqual([])
  expect([...ks].sort((a, b) => a - b), `${where}: plain appends out of order`).toEqual(ks)
  for (const path of acked.closed) {
    const response = await read(path)
    expect(response.headers.get('stream-closed'), `${where}: ${path} closed`).toBe('true')
  }
  for (const fork of acked.forks) {
    const bytes = Buffer.from(await (await read(fork.path)).arrayBuffer())
    expect(bytes.equals(fork.bytes), `${where}: fork ${fork.path}`).toBe(true)
  }
  for (const path of acked.deleted) expect((await read(path)).status, `${where}: ${path} deleted`).toBe(404)
  return seen
}

describe.skipIf(!replicationTestable() || !haproxyAvailable())('a 3-replica shard under leader kills', () => {
  // Restarted a second after it dies, as deploy/local-cluster.sh and the systemd unit do.
  useCluster({ replicas: 3, proxy: true, restartMs: 1000 }, {}, (started) => (cluster = started))
  // Before the cluster stops: the writers end first.
  afterAll(() => {
    stop = true
  })

  test(
    `${KILLS} leader SIGKILLs: nothing acknowledged lost or doubled, replicas identical`,
    async () => {
      for (let index = 0; index < PRODUCERS; index++) expect((await send(`p-${index}`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' } })).status).toBe(201)
      expect((await send('j', { method: 'PUT', headers: { 'content-type': 'application/json' } })).status).toBe(201)
      expect((await send('probe', { method: 'PUT', headers: { 'content-type': 'text/plain' } })).status).toBe(201)
      const writers = [...Array.from({ length: PRODUCERS }, (_, index) => producer(index)), plain(), probe()]
      const failovers: number[] = []
      for (let i = 0; i < KILLS; i++) {
        const leader = await cluster.leader(2, 60_000)
        await lifecycle(i)
        await sleep(100 + Math.random() * 400)
        const killedAt = performance.now()
        await cluster.signal(leader, 'SIGKILL')
        while (!(acked.probes.length > 0 && acked.probes[acked.probes.length - 1]! > killedAt)) await sleep(10)
        failovers.push(acked.probes.find((at) => at > killedAt)! - killedAt)
      }
      stop = true
      await Promise.all(writers)
      await cluster.leader(2, 60_000)
      const statuses = await cluster.converged()
      const sorted = [...failovers].sort((a, b) => a - b)
      const median = sorted[Math.floor(sorted.length / 2)] ?? 0
      console.log(
        `chaos: ${KILLS} leader kills; failover (kill → first 2xx append through the proxy) median ${Math.round(median)} ms, max ${Math.round(sorted[sorted.length - 1] ?? 0)} ms; ` +
          `${acked.producers.reduce((sum, list) => sum + list.length, 0)} producer appends, ${acked.plain.length} plain appends acknowledged; final WAL LSN ${statuses[0]!.walLsn}`,
      )
      const through = await verify(cluster.proxyUrl!, 'through the proxy')
      // Each replica's own copy: the cluster stops, each data directory is opened alone.
      await cluster.stop()
      for (const node of cluster.nodes) {
        const alone = createServer({ port: 0, dataDir: node.dataDir, durability: 'fsync', metrics: false, logLevel: 'warn' })
        await alone.listen()
        try {
          const copy = await verify(alone.url, `replica ${node.id}`)
          for (const [path, bytes] of through) expect(copy.get(path)!.equals(bytes), `replica ${node.id}: ${path} differs`).toBe(true)
        } finally {
          await alone.close()
        }
      }
    },
    KILLS * 15_000 + 120_000,
  )
})
