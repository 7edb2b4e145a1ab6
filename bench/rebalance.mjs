#!/usr/bin/env node
/**
 * bench/rebalance.mjs — what moving streams costs when a cluster grows and shrinks
 * (`ringstream rebalance`, cluster/moves.ts). deploy/local-cluster.sh starts 3 nodes with 2
 * in HAProxy's ring; streams of 64 KiB, 1 MiB, 16 MiB and 64 MiB are filled through the
 * proxy; then node3 is added and removed again while a writer appends 64 bytes to every
 * stream in turn. Reported per size: streams moved, bytes copied, the pause each moved stream
 * saw on its node (requests for it wait from the move's start to its end) and the slowest
 * append the writer saw on those streams (the pause as a client sees it, proxy and forward
 * hops included). Writes bench/results/rebalance.json. No peer has an equivalent to compare
 * with: the reference server does not scale out.
 *
 *   node bench/rebalance.mjs [--streams 4]
 */
import { execFile, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs, promisify } from 'node:util'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.resolve(HERE, '..')
const KiB = 1024
const MiB = 1024 * KiB
const SIZES = [64 * KiB, MiB, 16 * MiB, 64 * MiB]
const { values } = parseArgs({ options: { streams: { type: 'string', default: '4' } } })
const perSize = Number(values.streams)
const work = mkdtempSync(path.join(tmpdir(), 'ringstream-rebalance-bench-'))
const port = 24000
const proxy = `http://127.0.0.1:${port}`
const node = (i) => `http://127.0.0.1:${port + i}`

const cluster = spawn(path.join(ROOT, 'deploy', 'local-cluster.sh'), ['--nodes', '3', '--active', '2', '--port', String(port), '--data-dir', work], { stdio: ['ignore', 'pipe', 'pipe'] })
let log = ''
cluster.stdout.on('data', (chunk) => (log += chunk))
cluster.stderr.on('data', (chunk) => (log += chunk))
const stop = async () => {
  cluster.kill('SIGTERM')
  await new Promise((resolve) => cluster.once('exit', resolve))
  rmSync(work, { recursive: true, force: true })
}
try {
  for (let waited = 0; !log.includes('cluster ready on'); waited += 100) {
    if (waited > 60_000 || cluster.exitCode !== null) throw new Error(`the cluster did not start: ${log}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  const streams = SIZES.flatMap((size) => Array.from({ length: perSize }, (_, i) => ({ path: `cost/${size / KiB}k/${i}`, size })))
  const piece = Buffer.alloc(MiB, 'x')
  for (const { path: p, size } of streams) {
    await fetch(`${proxy}/v1/stream/${p}`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' } })
    for (let at = 0; at < size; at += MiB) {
      const res = await fetch(`${proxy}/v1/stream/${p}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: piece.subarray(0, Math.min(MiB, size - at)) })
      if (res.status !== 204) throw new Error(`filling ${p}: ${res.status}`)
    }
  }
  const results = {}
  for (const step of ['--add', '--remove']) {
    // The writer: one 64-byte append at a time, every stream in turn; the slowest per stream.
    const slowest = new Map()
    let writing = true
    const writer = (async () => {
      for (let n = 0; writing; n++) {
        const { path: p } = streams[n % streams.length]
        const started = performance.now()
        const res = await fetch(`${proxy}/v1/stream/${p}`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: Buffer.alloc(64, 'w') })
        await res.arrayBuffer()
        if (res.status !== 204) throw new Error(`append to ${p} during the move: ${res.status}`)
        slowest.set(p, Math.max(slowest.get(p) ?? 0, performance.now() - started))
      }
    })()
    await new Promise((resolve) => setTimeout(resolve, 500))
    const report = path.join(work, 'report.json')
    const started = performance.now()
    const { stdout } = await promisify(execFile)('node', [path.join(ROOT, 'bin', 'ringstream.js'), 'rebalance', '--proxy', proxy, '--proxy-admin', path.join(work, 'haproxy.sock'), '--nodes', [1, 2, 3].map((i) => `node${i}=${node(i)}`).join(','), step, 'node3', '--report', report])
    const seconds = (performance.now() - started) / 1000
    await new Promise((resolve) => setTimeout(resolve, 500))
    writing = false
    await writer
    const { moves } = JSON.parse(readFileSync(report, 'utf8'))
    const bySize = {}
    for (const size of SIZES) {
      const moved = moves.filter((move) => streams.find((stream) => stream.path === move.path)?.size === size)
      const pauses = moved.map((move) => move.pauseMs).sort((a, b) => a - b)
      const client = moved.map((move) => slowest.get(move.path) ?? 0).sort((a, b) => a - b)
      bySize[`${size / KiB} KiB`] = {
        moved: moved.length,
        bytes: moved.reduce((sum, move) => sum + move.bytes, 0),
        pauseMsMedian: pauses.length === 0 ? null : Math.round(pauses[Math.floor(pauses.length / 2)]),
        pauseMsMax: pauses.length === 0 ? null : Math.round(pauses[pauses.length - 1]),
        slowestAppendMsMax: client.length === 0 ? null : Math.round(client[client.length - 1]),
      }
    }
    results[step === '--add' ? 'grow 2 → 3' : 'shrink 3 → 2'] = { seconds: Number(seconds.toFixed(1)), summary: stdout.trim(), bySize }
    console.log(step, JSON.stringify(results[step === '--add' ? 'grow 2 → 3' : 'shrink 3 → 2'], null, 1))
  }
  writeFileSync(path.join(HERE, 'results', 'rebalance.json'), `${JSON.stringify({ date: new Date().toISOString(), streamsPerSize: perSize, results }, null, 1)}\n`)
} finally {
  await stop()
}
