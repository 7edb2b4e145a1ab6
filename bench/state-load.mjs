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
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.resolve(HERE, '..')
const { values } = parseArgs({ options: { changes: { type: 'string' }, rounds: { type: 'string' }, 'timeout-ms': { type: 'string' }, out: { type: 'string' } } })
const CHANGES = (values.changes ?? '10000,1000000').split(',').map(Number)
const ROUNDS = Number(values.rounds ?? 2)
const TIMEOUT_MS = Number(values['timeout-ms'] ?? 120_000)
const OUT = values.out ?? path.join(ROOT, 'bench', 'results', 'state-load.json')
const LIVE_MODES = ['false', 'long-poll', 'sse']
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
    for (;;) {
      const end = out.indexOf('\n')
      if (end < 0) break
      onLine?.(out.slice(0, end))
      out = out.slice(end + 1)
    }
  })
  child.stderr.on('data', () => {})
  return child
}

async function startServer(server) {
  const dir = mkdtempSync(path.join(tmpdir(), `state-load-${server.id}-`))
  let resolveUrl
  const url = new Promise((resolve) => (resolveUrl = resolve))
  const child = run('0', server.args(dir), (line) => {
    const match = /listening on (http:\/\/\S+?)(\/v1\/stream\/)?(\s|$)/.exec(line)
    if (match) resolveUrl(match[1])
  })
  const base = await Promise.race([url, new Promise((_, reject) => setTimeout(() => reject(new Error(`${server.id} did not start`)), 30_000))])
  return { child, dir, base }
}

async function stopServer(started) {
  started.child.kill('SIGKILL')
  await new Promise((resolve) => started.child.once('exit', resolve))
  rmSync(started.dir, { recursive: true, force: true })
}

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
    const child = run('1', [path.join(HERE, 'state-load', 'client.mjs'), url, live, String(TIMEOUT_MS)], (line) => {
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
      const started = await startServer(server)
      try {
        const stream = await fill(started.base, `state-${changes}`, changes)
        for (const live of LIVE_MODES) {
          // The 1 MiB server shows the old behaviour; its live: false load cannot finish.
          const result = await load(stream.url, live)
          const row = { changes, round, server: server.id, live, streamBytes: stream.bytes, expectedRows: stream.rows, ...result }
          results.push(row)
          console.log(`${String(changes).padStart(8)} r${round} ${server.id.padEnd(16)} live=${live.padEnd(9)} ${result.error === undefined ? `${String(result.ms).padStart(7)} ms` : `   FAIL ${result.error}`}  rows ${result.rows}/${stream.rows}  requests ${result.requests}`)
        }
      } finally {
        await stopServer(started)
      }
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
