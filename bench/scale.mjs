#!/usr/bin/env node
/**
 * bench/scale.mjs — storage at scale: what a million idle streams and a stream of ten
 * million appends cost in memory and at restart, and what a small checkpoint costs.
 *
 * 1. Idle: bench/lib/fill-streams.mjs creates S empty streams in-process (HTTP would take
 *    minutes); the real server (bin/ringstream.js, fsync) starts on the directory: spawn →
 *    listening time, RSS after start, after HEAD of 10,000 random streams, after SIGTERM +
 *    restart. An empty server's RSS on a fresh directory is measured first, for reference.
 * 2. Big stream: one JSON stream of N appends of 64 bytes, the last 10% only in the WAL
 *    (the fill exits without a final checkpoint, as after a kill): restart time, RSS, and
 *    reads at 200 random message offsets (latency), then SIGTERM + restart time.
 * 3. Checkpoint: in a child process on the idle directory, 1,000 of the S streams get an
 *    append each, then one checkpoint: event-loop active time (eventLoopUtilization) and
 *    wall time. Small appends (64 B: the streams stay inline, in their registry entries)
 *    and 2 KiB ones (the streams get data files), each right away and after the 1 s sweep.
 *
 * Usage (after `npm run build`):
 *   node bench/scale.mjs [--streams S] [--appends N] [--quick] [--tmp-base DIR] [--out FILE]
 *   defaults: S = 1,000,000, N = 10,000,000; --quick: 100,000 and 1,000,000.
 * Writes bench/results/scale.json (or --out) and prints a table. No timing is asserted.
 */

import { spawn, execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

const root = new URL('..', import.meta.url).pathname
const { values } = parseArgs({
  options: {
    streams: { type: 'string' },
    appends: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'tmp-base': { type: 'string', default: tmpdir() },
    out: { type: 'string', default: join(root, 'bench/results/scale.json') },
  },
})
const STREAMS = Number(values.streams ?? (values.quick ? 100_000 : 1_000_000))
const APPENDS = Number(values.appends ?? (values.quick ? 1_000_000 : 10_000_000))
const FILL = join(root, 'bench/lib/fill-streams.mjs')
const BIN = join(root, 'bin/ringstream.js')
const MiB = 1024 * 1024

/** Resident memory in MiB: all of it, and the process's own (anonymous) part; the rest is
 * file pages mapped in (the node binary, lmdb's memory-mapped registry), which the kernel
 * can drop at will. */
function memory(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const field = (name) => Math.round(Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)[1]) / 102.4) / 10
  return { rss: field('VmRSS'), anon: field('RssAnon') }
}

async function start(dataDir) {
  const started = performance.now()
  const child = spawn(process.execPath, [BIN, '--port', '0', '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'pipe'] })
  let seen = ''
  child.stderr.on('data', (chunk) => (seen += chunk))
  for await (const chunk of child.stdout) {
    seen += chunk
    const match = /listening on (http:\/\/[^\s/]+)\//.exec(seen)
    if (match) return { child, url: match[1], readyMs: performance.now() - started, log: seen }
  }
  throw new Error(`server did not start: ${seen}`)
}

async function stop(child, signal = 'SIGTERM') {
  const exited = new Promise((resolve) => child.on('exit', resolve))
  child.kill(signal)
  await exited
}

function fill(dataDir, ...args) {
  const started = performance.now()
  execFileSync(process.execPath, ['--max-old-space-size=4096', FILL, dataDir, ...args.map(String)], { stdio: 'inherit' })
  return performance.now() - started
}

const median = (values) => values.slice().sort((a, b) => a - b)[Math.floor(values.length / 2)]

async function idleStreams(base) {
  const empty = mkdtempSync(join(base, 'rs-empty-'))
  const fresh = await start(empty)
  await new Promise((resolve) => setTimeout(resolve, 500))
  const emptyRss = memory(fresh.child.pid).rss
  await stop(fresh.child)
  rmSync(empty, { recursive: true, force: true })

  const dir = mkdtempSync(join(base, 'rs-idle-'))
  const fillMs = fill(dir, 0, 0, '--idle', STREAMS)
  const first = await start(dir)
  const rssAtStart = memory(first.child.pid)
  for (let i = 0; i < 10_000; i++) {
    const res = await fetch(`${first.url}/v1/stream/idle/${Math.floor(Math.random() * STREAMS)}`, { method: 'HEAD' })
    if (res.status !== 200) throw new Error(`HEAD answered ${res.status}`)
  }
  const rssAfterHeads = memory(first.child.pid)
  await stop(first.child)
  const restarts = []
  let rssAfterRestart = 0
  for (let run = 0; run < 3; run++) {
    const again = await start(dir)
    restarts.push(again.readyMs)
    rssAfterRestart = memory(again.child.pid)
    await stop(again.child)
  }
  return { dir, result: { streams: STREAMS, fillMs, emptyServerRssMiB: emptyRss, firstStartMs: first.readyMs, atStartMiB: rssAtStart, after10kHeadsMiB: rssAfterHeads, restartMs: median(restarts), afterRestartMiB: rssAfterRestart } }
}

async function bigStream(base, emptyRss) {
  const dir = mkdtempSync(join(base, 'rs-big-'))
  // 64-byte appends: {"i":N,"p":"…"} padded so each stored message (with its ',') is 64 bytes.
  const fillMs = fill(dir, APPENDS, Math.floor(APPENDS * 0.9), 'big:json64')
  const first = await start(dir)
  const replayed = /recovered (\d+) WAL records/.exec(first.log)?.[1]
  const rss = memory(first.child.pid)
  const latencies = []
  for (let k = 0; k < 200; k++) {
    const i = Math.floor(Math.random() * APPENDS)
    const offset = `0000000000000000_${String(i * 64).padStart(16, '0')}`
    const t = performance.now()
    const res = await fetch(`${first.url}/v1/stream/big?offset=${offset}`)
    const body = await res.text()
    latencies.push(performance.now() - t)
    if (res.status !== 200 || !body.startsWith(`[{"i":${i},`)) throw new Error(`read at message ${i}: ${res.status} ${body.slice(0, 40)}`)
  }
  const rssAfterReads = memory(first.child.pid)
  await stop(first.child, 'SIGTERM')
  const second = await start(dir)
  const afterTerm = second.readyMs
  await stop(second.child, 'SIGKILL')
  const third = await start(dir)
  const afterKill = third.readyMs
  await stop(third.child)
  rmSync(dir, { recursive: true, force: true })
  latencies.sort((a, b) => a - b)
  return {
    appends: APPENDS,
    fillMs,
    restartWithWalTailMs: first.readyMs,
    walRecordsReplayed: Number(replayed),
    afterStartMiB: rss,
    afterReadsMiB: rssAfterReads,
    rssOverEmptyMiB: Math.round((rssAfterReads.rss - emptyRss) * 10) / 10,
    readP50Ms: latencies[100],
    readP99Ms: latencies[198],
    restartAfterSigtermMs: afterTerm,
    restartAfterSigkillMs: afterKill,
  }
}

function checkpointCost(dir) {
  const script = `
    import { selectIo } from '${root}dist/io/select.js'
    import { DEFAULTS } from '${root}dist/config.js'
    import { parseContentType } from '${root}dist/protocol/headers.js'
    import { DurableStorage } from '${root}dist/storage/durable.js'
    import { LmdbRegistry } from '${root}dist/storage/registry/registry-lmdb.js'
    import { Engine } from '${root}dist/streams/engine.js'
    import { recoveryTarget } from '${root}dist/streams/recovery.js'
    const storage = new DurableStorage({ io: selectIo('auto').io, dataDir: '${dir}', walSegmentBytes: ${64 * MiB}, checkpointIntervalMs: 3600000,
      checkpointWalBytes: Number.MAX_SAFE_INTEGER, openFilesMax: DEFAULTS.openFilesMax, readCacheBytes: DEFAULTS.readCacheBytes, salvage: false, segmentBytes: ${64 * MiB}, checkpointChangedStreams: 1e9,
      openRegistry: async (d) => LmdbRegistry.open(d) })
    const engine = new Engine({ storage, defaultDurability: 'fsync', readBytesMax: ${MiB}, expirySweepMs: 1000 })
    await storage.recover(recoveryTarget(engine, 10000))
    await storage.checkpoint()
    const type = parseContentType('application/octet-stream')
    const results = {}
    // 64-byte appends (small streams: the registry entries hold their bytes, no data file)
    // right after the appends and 1.5 s later (after the sweep that writes data files
    // within 1 s); then 2 KiB appends, past the inline limit, right after (the checkpoint
    // creates and writes their 1,000 data files) and 1.5 s later (the sweep did that).
    const rounds = [['immediate', 0, 64], ['afterSweep', 1500, 64], ['filesImmediate', 0, 2048], ['filesAfterSweep', 1500, 2048]]
    for (const [index, [round, waitMs, bytes]] of rounds.entries()) {
      const appends = []
      for (let i = 0; i < 1000; i++) appends.push(engine.append({ path: 'idle/' + (Math.floor(i * ${STREAMS} / 1000) + index), contentType: type, body: Buffer.from('x'.repeat(bytes)), close: false, producer: undefined, streamSeq: undefined }))
      await Promise.all(appends)
      await new Promise((resolve) => setTimeout(resolve, waitMs))
      const elu = performance.eventLoopUtilization()
      const t = performance.now()
      await storage.checkpoint()
      const wall = performance.now() - t
      results[round] = { eventLoopActiveMs: performance.eventLoopUtilization(elu).active, wallMs: wall }
    }
    console.log(JSON.stringify({ changed: 1000, of: ${STREAMS}, ...results }))
    process.exit(0)
  `
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }).trim().split('\n').pop())
}

const base = values['tmp-base']
const idle = await idleStreams(base)
console.log('idle streams:', idle.result)
const checkpoint = checkpointCost(idle.dir)
console.log('checkpoint:', checkpoint)
rmSync(idle.dir, { recursive: true, force: true })
const big = await bigStream(base, idle.result.emptyServerRssMiB)
console.log('big stream:', big)
const results = { date: new Date().toISOString(), node: process.version, idle: idle.result, checkpoint, big }
writeFileSync(values.out, JSON.stringify(results, null, 2) + '\n')
console.log(`wrote ${values.out}`)
