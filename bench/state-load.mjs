#!/usr/bin/env node
/**
 * bench/state-load.mjs — cold loads of a State Protocol stream with @durable-streams/state's
 * StreamDB (preload(), in a fresh client process each time), in each `live` mode, against
 * ringstream and the Node reference server in the same run, same CPU budget: the server alone
 * on core 0 (taskset), the client on core 1. The stream holds N changes (inserts of N/2 rows
 * of ~100 bytes, then updates of each; a client materializes N/2 rows).
 *
 *   node bench/state-load.mjs [--changes 10000,1000000] [--rounds 2] [--timeout-ms 120000]
 *                             [--out bench/results/state-load.json]
 *
 * Servers: ringstream fsync (io auto), ringstream fsync with --read-bytes-max 1048576 (the
 * previous 1 MiB responses), the reference in memory. Needs a built server (npm run build).
 */
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { CLIENT_BENCH_SERVERS, HERE, ROOT, runOnCore, withServer } from './lib/client-bench.mjs'

const { values } = parseArgs({ options: { changes: { type: 'string' }, rounds: { type: 'string' }, 'timeout-ms': { type: 'string' }, out: { type: 'string' } } })
const CHANGES = (values.changes ?? '10000,1000000').split(',').map(Number)
const ROUNDS = Number(values.rounds ?? 2)
const TIMEOUT_MS = Number(values['timeout-ms'] ?? 120_000)
const OUT = values.out ?? path.join(ROOT, 'bench', 'results', 'state-load.json')
const LIVE_MODES = ['false', 'long-poll', 'sse']
const SERVERS = CLIENT_BENCH_SERVERS

/** N changes: inserts of N/2 rows, then an update of each. Appended 1,000 per POST. */
async function fill(base, name, changes) {
  const url = `${base}/v1/stream/${name}`
  const created = await fetch(url, { method: 'PUT', headers: { 'Content-Type': 'application/json' } })
  if (created.status !== 201) throw new Error(`PUT ${url}: ${created.status}`)
  const rows = changes / 2
  let bytes = 0
  for (let at = 0; at < changes; at += 1000) {
    const batch = []
    for (let i = at; i < Math.min(at + 1000, changes); i++) {
      const update = i >= rows
      const id = `r${update ? i - rows : i}`
      batch.push({ type: 'row', key: id, value: { id, text: `row ${id} ${update ? 'updated' : 'inserted'} with some text`.padEnd(80, '.'), v: update ? 2 : 1 }, headers: { operation: update ? 'update' : 'insert' } })
    }
    const body = JSON.stringify(batch)
    bytes += body.length
    const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body })
    if (res.status !== 204 && res.status !== 200) throw new Error(`POST ${url}: ${res.status}`)
  }
  return { url, bytes, rows }
}

function load(url, live) {
  return new Promise((resolve) => {
    let result
    const child = runOnCore('1', [path.join(HERE, 'state-load', 'client.mjs'), url, live, String(TIMEOUT_MS)], (line) => {
      try {
        result = JSON.parse(line)
      } catch {}
    })
    child.once('exit', () => resolve(result ?? { error: 'the client printed no result' }))
  })
}

const results = []
for (const changes of CHANGES) {
  for (let round = 1; round <= ROUNDS; round++) {
    // Servers in turn (order reversed every other round), one at a time on core 0.
    const order = round % 2 === 1 ? SERVERS : [...SERVERS].reverse()
    for (const server of order) {
      await withServer(server, async (base) => {
        const stream = await fill(base, `state-${changes}`, changes)
        for (const live of LIVE_MODES) {
          // The 1 MiB server shows the old behaviour; its live: false load cannot finish.
          const result = await load(stream.url, live)
          const row = { changes, round, server: server.id, live, streamBytes: stream.bytes, expectedRows: stream.rows, ...result }
          results.push(row)
          console.log(`${String(changes).padStart(8)} r${round} ${server.id.padEnd(16)} live=${live.padEnd(9)} ${result.error === undefined ? `${String(result.ms).padStart(7)} ms` : `   FAIL ${result.error}`}  rows ${result.rows}/${stream.rows}  requests ${result.requests}`)
        }
      })
    }
  }
}

const summary = []
for (const changes of CHANGES) {
  for (const server of SERVERS) {
    for (const live of LIVE_MODES) {
      const rows = results.filter((r) => r.changes === changes && r.server === server.id && r.live === live)
      const ok = rows.filter((r) => r.error === undefined && r.rows === r.expectedRows)
      const ms = ok.map((r) => r.ms).sort((a, b) => a - b)
      summary.push({ changes, server: server.id, live, loads: rows.length, complete: ok.length, medianMs: ms.length === 0 ? null : ms[Math.floor((ms.length - 1) / 2)], requests: rows[0]?.requests ?? null, errors: [...new Set(rows.map((r) => r.error).filter(Boolean))] })
    }
  }
}
writeFileSync(OUT, `${JSON.stringify({ benchmark: 'state-load', date: new Date().toISOString(), node: process.version, changes: CHANGES, rounds: ROUNDS, timeoutMs: TIMEOUT_MS, summary, results }, null, 2)}\n`)
console.log(`\nwrote ${path.relative(process.cwd(), OUT)}`)
for (const s of summary) console.log(`${String(s.changes).padStart(8)} ${s.server.padEnd(16)} live=${s.live.padEnd(9)} ${s.medianMs === null ? 'no complete load' : `${s.medianMs} ms`} (${s.complete}/${s.loads} complete, ${s.requests} requests)${s.errors.length ? ` ${s.errors[0]}` : ''}`)
