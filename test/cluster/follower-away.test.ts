// A follower away for a million appends: a 3-replica shard of real processes keeps taking
// writes with one follower down (the C load generator of bench/, 100 streams × 10,000
// idempotent appends, each stream read back and checked by it), then the follower comes
// back and catches up — from the leader's WAL, or from a snapshot and then the WAL when
// checkpoints have retired what it missed — until its copy is the leader's.

import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type TestCluster, replicationTestable, useCluster } from './cluster-harness.js'

const APPENDS = Number(process.env.FOLLOWER_AWAY_APPENDS ?? 1_000_000)
const STREAMS = 100
const SOURCE = fileURLToPath(new URL('../../bench/loadgen/loadgen.c', import.meta.url))
const buildDir = mkdtempSync(join(tmpdir(), 'ringstream-loadgen-'))
const LOADGEN = join(buildDir, 'loadgen')
const compiler = spawnSync('cc', ['--version']).status === 0

let cluster: TestCluster

describe.skipIf(!replicationTestable() || !compiler)(`a follower away for ${APPENDS} appends`, () => {
  beforeAll(() => {
    execFileSync('cc', ['-O2', '-o', LOADGEN, SOURCE])
  })
  afterAll(() => rmSync(buildDir, { recursive: true, force: true }))
  useCluster({ replicas: 3 }, {}, (started) => (cluster = started))

  test('writes go on with one follower down; it catches up when it returns', async () => {
    const leader = await cluster.leader()
    const away = cluster.nodes.find((node) => node !== leader)!
    await cluster.hold(away)
    const started = performance.now()
    const args = ['--mode', 'fill', '--port', new URL(leader.url).port, '--prefix', '/v1/stream/away-', '--streams', String(STREAMS), '--count', String(APPENDS / STREAMS), '--conns', '64', '--body', '64']
    const result = JSON.parse(execFileSync(LOADGEN, args, { maxBuffer: 16 * 1024 * 1024, timeout: 600_000 }).toString()) as {
      failed: boolean
      failReason: string
      totalAppends: number
      appendsPerSecond: number
      verify: { lengthMismatches: number; contentMismatches: number; unresolvedAppends: number }
    }
    const writeSeconds = (performance.now() - started) / 1000
    expect(result.failed, result.failReason).toBe(false)
    expect(result.totalAppends).toBe(APPENDS)
    expect(result.verify).toMatchObject({ lengthMismatches: 0, contentMismatches: 0, unresolvedAppends: 0 })
    const returned = performance.now()
    cluster.release(away)
    await cluster.leader(2, 120_000)
    const statuses = await cluster.converged(120_000)
    console.log(
      `follower away: ${APPENDS} appends in ${writeSeconds.toFixed(1)} s (${Math.round(result.appendsPerSecond)}/s with 2 of 3 replicas); ` +
        `caught up ${((performance.now() - returned) / 1000).toFixed(1)} s after it returned; WAL LSN ${statuses[0]!.walLsn}`,
    )
    const head = await fetch(`${away.url}/v1/stream/away-0`, { method: 'HEAD' })
    expect(head.headers.get('stream-next-offset')).toBe(`0000000000000000_${String((APPENDS / STREAMS) * 64).padStart(16, '0')}`)
  }, 900_000)
})
