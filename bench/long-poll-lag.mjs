#!/usr/bin/env node
/**
 * bench/long-poll-lag.mjs — how far a live reader trails a fast producer, with the official
 * client (bench/long-poll-lag/client.mjs), against ringstream, ringstream with
 * --read-bytes-max 1048576 (the previous 1 MiB responses) and the Node reference server, in
 * one run: the server alone on core 0 (taskset), the client on core 1.
 *
 *   node bench/long-poll-lag.mjs [--rate 5000] [--seconds 4] [--rounds 3] [--live long-poll,sse]
 *                                [--out bench/results/long-poll-lag.json]
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.resolve(HERE, '..')
const { values } = parseArgs({ options: { rate: { type: 'string' }, seconds: { type: 'string' }, rounds: { type: 'string' }, live: { type: 'string' }, out: { type: 'string' } } })
const RATE = Number(values.rate ?? 5000)
const SECONDS = Number(values.seconds ?? 4)
const ROUNDS = Number(values.rounds ?? 3)
const LIVE = (values.live ?? 'long-poll,sse').split(',')
const OUT = values.out ?? path.join(ROOT, 'bench', 'results', 'long-poll-lag.json')
const SERVERS = [
  { id: 'ringstream', args: (dir) => [path.join(ROOT, 'bin', 'ringstream.js'), '--port', '0', '--data-dir', dir] },
  { id: 'ringstream-1mib', args: (dir) => [path.join(ROOT, 'bin', 'ringstream.js'), '--port', '0', '--data-dir', dir, '--read-bytes-max', '1048576'] },
  { id: 'reference', args: () => [path.join(HERE, 'ref-server.mjs'), '--port', '0'] },
]

function run(core, args, onLine) {
  const child = spawn('taskset', ['-c', core, process.execPath, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d) => {
    out += d
    for (let end = out.indexOf('\n'); end >= 0; end = out.indexOf('\n')) {
      onLine?.(out.slice(0, end))
      out = out.slice(end + 1)
    }
  })
  child.stderr.on('data', () => {})
  return child
}

async function withServer(server, action) {
  const dir = mkdtempSync(path.join(tmpdir(), `lag-${server.id}-`))
  let resolveUrl
  const url = new Promise((resolve) => (resolveUrl = resolve))
  const child = run('0', server.args(dir), (line) => {
    const match = /listening on (http:\/\/\S+?)(\/v1\/stream\/)?(\s|$)/.exec(line)
    if (match) resolveUrl(match[1])
  })
  try {
    return await action(await url)
  } finally {
    child.kill('SIGKILL')
    await new Promise((resolve) => child.once('exit', resolve))
    rmSync(dir, { recursive: true, force: true })
  }
}

function measure(url, live) {
  return new Promise((resolve) => {
    let result
    const child = run('1', [path.join(HERE, 'long-poll-lag', 'client.mjs'), url, live, String(RATE), String(SECONDS)], (line) => {
      try {
        result = JSON.parse(line)
      } catch {}
    })
    child.once('exit', () => resolve(result ?? { outcome: 'the client printed no result' }))
  })
}

const results = []
for (let round = 1; round <= ROUNDS; round++) {
  const order = round % 2 === 1 ? SERVERS : [...SERVERS].reverse()
  for (const server of order) {
    for (const live of LIVE) {
      const result = await withServer(server, (base) => measure(`${base}/v1/stream/lag-${round}-${live}`, live))
      results.push({ round, server: server.id, ...result })
      console.log(`r${round} ${server.id.padEnd(16)} ${live.padEnd(9)} lag p50 ${result.lagP50} p99 ${result.lagP99} max ${result.lagMax} ms; last message ${result.afterLastAckMs} ms after the last ack; ${result.requests} requests, largest ${result.largestResponse} B; ${result.outcome} ${result.received}/${result.messages}`)
    }
  }
}
const median = (xs) => {
  const sorted = xs.filter((x) => typeof x === 'number').sort((a, b) => a - b)
  return sorted.length === 0 ? null : sorted[Math.floor((sorted.length - 1) / 2)]
}
const summary = []
for (const server of SERVERS) {
  for (const live of LIVE) {
    const rows = results.filter((r) => r.server === server.id && r.live === live)
    summary.push({ server: server.id, live, rounds: rows.length, lagP50: median(rows.map((r) => r.lagP50)), lagP99: median(rows.map((r) => r.lagP99)), afterLastAckMs: median(rows.map((r) => r.afterLastAckMs)), requests: median(rows.map((r) => r.requests)) })
  }
}
writeFileSync(OUT, `${JSON.stringify({ benchmark: 'long-poll-lag', date: new Date().toISOString(), node: process.version, rate: RATE, seconds: SECONDS, rounds: ROUNDS, summary, results }, null, 2)}\n`)
console.log(`\nwrote ${path.relative(process.cwd(), OUT)}`)
for (const s of summary) console.log(`${s.server.padEnd(16)} ${s.live.padEnd(9)} medians: lag p50 ${s.lagP50} p99 ${s.lagP99} ms, last message ${s.afterLastAckMs} ms after the last ack, ${s.requests} requests`)
