// Failures of one part at a time, on a 3-replica shard of real processes and a real etcd:
// a leader that dies for good (its machine is gone), one that stalls past its lease
// (SIGSTOP) and wakes up, a follower that is away while writes go on, a majority lost,
// etcd lost. Nothing acknowledged is ever lost; without a majority or etcd, writes answer
// 503 with Retry-After and a reason, and resume by themselves.

import { describe, expect, test } from 'vitest'
import { type TestCluster, type TestNode, replicationTestable, sleep, useCluster } from './cluster-harness.js'

let cluster: TestCluster
const TTL_MS = 2000

async function append(base: string, path: string, body: string, timeoutMs = 10_000): Promise<Response | undefined> {
  try {
    return await fetch(`${base}/v1/stream/${path}`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body, signal: AbortSignal.timeout(timeoutMs) })
  } catch {
    return undefined
  }
}

/** Appends through whichever node answers until one is acknowledged. */
async function appendSomewhere(path: string, body: string): Promise<void> {
  for (;;) {
    for (const node of cluster.nodes) {
      const response = await append(node.url, path, body, 3000)
      if (response !== undefined && response.status === 204) return
      await response?.arrayBuffer()
    }
    await sleep(50)
  }
}

async function readAll(node: TestNode, path: string): Promise<string> {
  const response = await fetch(`${node.url}/v1/stream/${path}?offset=-1`)
  expect(response.status).toBe(200)
  return response.text()
}

describe.skipIf(!replicationTestable())('a 3-replica shard when one part fails', () => {
  useCluster({ replicas: 3, leaseTtlMs: TTL_MS }, { log: 'text/plain' }, (started) => (cluster = started))

  test('a leader that dies for good: a follower takes over within the lease TTL; it rejoins and catches up later', async () => {
    await appendSomewhere('log', 'a;')
    const leader = await cluster.leader()
    const killedAt = performance.now()
    await cluster.hold(leader)
    const survivor = cluster.nodes.find((node) => node !== leader)!
    await appendSomewhere('log', 'b;')
    const failoverMs = performance.now() - killedAt
    console.log(`failover with the old leader gone for good: ${Math.round(failoverMs)} ms (lease TTL ${TTL_MS} ms)`)
    expect(await readAll(survivor, 'log')).toBe('a;b;')
    for (let i = 0; i < 200; i++) await appendSomewhere('log', `${i};`)
    cluster.release(leader)
    await cluster.leader(2)
    const statuses = await cluster.converged()
    expect(statuses.find((status) => status.node === leader.id)!.role).toBe('follower')
  }, 60_000)

  test('a follower away for more than the leader keeps in memory catches up from its WAL files', async () => {
    const leader = await cluster.leader()
    const away = cluster.nodes.find((node) => node !== leader)!
    await cluster.hold(away)
    expect((await fetch(`${leader.url}/v1/stream/bulk`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' } })).status).toBe(201)
    // 80 MiB: more than the 64 MiB of recent batches a leader keeps in memory for followers.
    const body = Buffer.alloc(64 * 1024, 7)
    let next = 0
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next++ < 1280) {
          const response = await fetch(`${leader.url}/v1/stream/bulk`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body })
          expect(response.status).toBe(204)
        }
      }),
    )
    cluster.release(away)
    await cluster.leader(2)
    await cluster.converged(60_000)
    const head = await fetch(`${away.url}/v1/stream/bulk`, { method: 'HEAD' })
    expect(head.headers.get('stream-next-offset')).toBe(`0000000000000000_${String(1280 * 64 * 1024).padStart(16, '0')}`)
  }, 120_000)

  test('a leader stalled past its lease (SIGSTOP): a new one takes over; what the old one answered 2xx is kept; it rejoins as a follower', async () => {
    const old = await cluster.leader()
    const oldEpoch = (await old.status())!.epoch
    // A writer pinned to the old leader: its requests wait while it is stopped.
    const answered: string[] = []
    let stopPinned = false
    const pinned = (async () => {
      for (let i = 0; !stopPinned; i++) {
        const response = await append(old.url, 'log', `pinned-${i};`, 15_000)
        if (response?.status === 204) answered.push(`pinned-${i};`)
        await response?.arrayBuffer()
        await sleep(5)
      }
    })()
    await sleep(300)
    await cluster.signal(old, 'SIGSTOP')
    const stoppedAt = performance.now()
    // The others elect a new leader once the old lease runs out.
    let newLeader: TestNode | undefined
    while (newLeader === undefined) {
      for (const node of cluster.nodes) if (node !== old && (await node.status())?.role === 'leader') newLeader = node
      await sleep(50)
    }
    const electedMs = performance.now() - stoppedAt
    await appendSomewhere('log', 'after-stall;')
    await sleep(500)
    await cluster.signal(old, 'SIGCONT')
    // It finds its lease gone, steps down (exits) and is started again as a follower.
    const deadline = Date.now() + 20_000
    let rejoined = false
    while (!rejoined && Date.now() < deadline) {
      const status = await old.status()
      rejoined = status?.role === 'follower' && status.epoch > oldEpoch
      await sleep(100)
    }
    stopPinned = true
    await pinned
    expect(rejoined).toBe(true)
    await cluster.leader(2)
    await cluster.converged()
    const final = await readAll(newLeader, 'log')
    console.log(`stall: new leader after ${Math.round(electedMs)} ms; ${answered.length} appends the old leader acknowledged, all kept`)
    for (const body of answered) expect(final).toContain(body)
    expect(final).toContain('after-stall;')
  }, 90_000)

  test('without a majority writes answer 503 with a reason and Retry-After; they resume when it is back', async () => {
    const leader = await cluster.leader()
    const before = await readAll(leader, 'log')
    const followers = cluster.nodes.filter((node) => node !== leader)
    for (const follower of followers) await cluster.hold(follower)
    const started = performance.now()
    let refused: Response | undefined
    let ok = 0
    while (refused === undefined) {
      const response = await append(leader.url, 'log', 'no-majority;', 10_000)
      if (response === undefined || response.status === 503) refused = response
      else {
        expect(response.status).toBe(204)
        ok++
      }
      if (performance.now() - started > 15_000) break
      if (refused === undefined) await sleep(100)
    }
    const refusedMs = performance.now() - started
    // No 2xx needs a majority that is gone: the first append after the loss already waits.
    expect(ok).toBe(0)
    // Refused within about one lease TTL (the first one times out; a restarted leader
    // without a majority refuses at once).
    expect(refusedMs).toBeLessThan(TTL_MS * 3)
    let answer = refused
    for (let i = 0; answer === undefined && i < 50; i++) {
      answer = await append(leader.url, 'log', 'no-majority;', 3000)
      if (answer === undefined) await sleep(100)
    }
    expect(answer?.status).toBe(503)
    expect(answer?.headers.get('retry-after')).toBe('1')
    const error = (await answer!.json()) as { error: { code: string; message: string } }
    expect(['NO_LEADER', 'REPLICAS_UNAVAILABLE']).toContain(error.error.code)
    expect(error.error.message).toMatch(/majority|replicas|leader/)
    for (const follower of followers) cluster.release(follower)
    await appendSomewhere('log', 'majority-back;')
    await cluster.leader(2)
    await cluster.converged()
    const after = await readAll(cluster.nodes[0]!, 'log')
    expect(after.startsWith(before)).toBe(true)
    expect(after.endsWith('majority-back;')).toBe(true)
  }, 90_000)

  test('without etcd writes answer 503 within about one lease TTL; they resume when etcd is back', async () => {
    const leader = await cluster.leader()
    await cluster.etcd.kill()
    const started = performance.now()
    let status = 204
    while (status === 204 && performance.now() - started < 15_000) {
      const response = await append(leader.url, 'log', 'etcd-down;', 5000)
      status = response?.status ?? 0
      await response?.arrayBuffer()
      await sleep(50)
    }
    const refusedMs = performance.now() - started
    expect(status === 503 || status === 0).toBe(true)
    expect(refusedMs).toBeLessThan(TTL_MS * 2)
    // Every node answers, and says why.
    let reason = ''
    for (let i = 0; i < 100 && !/etcd/.test(reason); i++) {
      const response = await append(cluster.nodes[0]!.url, 'log', 'etcd-down;', 3000)
      if (response?.status === 503) reason = ((await response.json()) as { error: { message: string } }).error.message
      else await response?.arrayBuffer()
      await sleep(100)
    }
    expect(reason).toMatch(/etcd/)
    await cluster.etcd.restart()
    await appendSomewhere('log', 'etcd-back;')
    await cluster.leader(2)
    await cluster.converged()
  }, 90_000)
})
