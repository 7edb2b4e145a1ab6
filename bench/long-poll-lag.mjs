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
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { CLIENT_BENCH_SERVERS, HERE, ROOT, runOnCore, withServer } from './lib/client-bench.mjs'

const { values } = parseArgs({ options: { rate: { type: 'string' }, seconds: { type: 'string' }, rounds: { type: 'string' }, live: { type: 'string' }, out: { type: 'string' } } })
const RATE = Number(values.rate ?? 5000)
const SECONDS = Number(values.seconds ?? 4)
const ROUNDS = Number(values.rounds ?? 3)
const LIVE = (values.live ?? 'long-poll,sse').split(',')
const OUT = values.out ?? path.join(ROOT, 'bench', 'results', 'long-poll-lag.json')
const SERVERS = CLIENT_BENCH_SERVERS

function measure(url, live) {
  return new Promise((resolve) => {
    let result
    const child = runOnCore('1', [path.join(HERE, 'long-poll-lag', 'client.mjs'), url, live, String(RATE), String(SECONDS)], (line) => {
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
