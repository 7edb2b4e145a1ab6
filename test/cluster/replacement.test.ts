// Bringing a replica back and replacing one, on a 3-replica shard of real processes: a
// follower away while writes go on catches up from the leader's WAL; one away for longer
// than the leader's WAL keeps (small WAL segments, frequent checkpoints here) gets a
// snapshot of the leader's data and then the WAL after it; a node with an empty data
// directory in place of a lost one does the same and becomes a full replica — all while
// writes go on. Every replica's copy is then opened alone and compared byte for byte.

import { randomBytes } from 'node:crypto'
import { rmSync } from 'node:fs'
import { describe, expect, test } from 'vitest'
import { createServer } from '../../src/server.js'
import { type TestCluster, type TestNode, replicationTestable, sleep, useCluster } from './cluster-harness.js'

let cluster: TestCluster
const written: Buffer[] = []

/** Appends `count` bodies of `bytes` to stream `big` through the leader, `parallel` at a time. */
async function write(leader: TestNode, count: number, bytes: number, parallel = 8): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < count) {
        next++
        const body = randomBytes(bytes)
        for (;;) {
          const response = await fetch(`${leader.url}/v1/stream/big`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body })
          await response.arrayBuffer()
          if (response.status === 204) break
          if (response.status !== 503) throw new Error(`append: ${response.status}`)
          await sleep(50)
        }
        written.push(body)
      }
    }),
  )
}

/** Every body written is in the stream once (order across parallel writers is free). */
function checkCopy(bytes: Buffer, where: string): void {
  const expected = written.reduce((sum, body) => sum + body.length, 0)
  expect(bytes.length, `${where}: length`).toBe(expected)
  const bodies = new Set(written.map((body) => body.subarray(0, 16).toString('hex')))
  const size = written[0]!.length
  for (let at = 0; at < bytes.length; at += size) expect(bodies.has(bytes.subarray(at, at + 16).toString('hex')), `${where}: unknown bytes at ${at}`).toBe(true)
}

describe.skipIf(!replicationTestable())('replicas that come back and replicas replaced', () => {
  // 16 MiB WAL segments and a checkpoint every 16 MiB: the WAL retires quickly.
  const walBytes = String(16 * 1024 * 1024)
  useCluster({ replicas: 3, args: ['--wal-segment-bytes', walBytes, '--checkpoint-wal-bytes', walBytes] }, { big: 'application/octet-stream' }, (started) => (cluster = started))

  test('a follower away for a few MiB catches up from the leader’s WAL', async () => {
    const leader = await cluster.leader()
    const away = cluster.nodes.find((node) => node !== leader)!
    await cluster.hold(away)
    await write(leader, 500, 8192)
    cluster.release(away)
    await cluster.leader(2)
    await cluster.converged()
  }, 120_000)

  test('a follower away for longer than the leader’s WAL keeps gets a snapshot, then the rest', async () => {
    const leader = await cluster.leader()
    const away = cluster.nodes.find((node) => node !== leader)!
    await cluster.hold(away)
    await write(leader, 6000, 8192)
    const writing = write(leader, 1000, 8192, 2)
    cluster.release(away)
    await writing
    await cluster.leader(2, 60_000)
    await cluster.converged(60_000)
  }, 180_000)

  test('an empty node in place of a lost one becomes a full replica, with writes going on', async () => {
    const leader = await cluster.leader()
    const lost = cluster.nodes.find((node) => node !== leader)!
    await cluster.hold(lost)
    rmSync(lost.dataDir, { recursive: true, force: true })
    const writing = write(leader, 1500, 8192, 2)
    cluster.release(lost)
    await writing
    await cluster.leader(2, 60_000)
    await cluster.converged(60_000)
  }, 180_000)

  test('every replica’s own copy holds every acknowledged append', async () => {
    await cluster.converged()
    await cluster.stop()
    for (const node of cluster.nodes) {
      const alone = createServer({ port: 0, dataDir: node.dataDir, durability: 'fsync', metrics: false, logLevel: 'warn' })
      await alone.listen()
      try {
        const response = await fetch(`${alone.url}/v1/stream/big?offset=-1`)
        checkCopy(Buffer.from(await response.arrayBuffer()), `replica ${node.id}`)
      } finally {
        await alone.close()
      }
    }
  }, 120_000)
})
