#!/usr/bin/env node
/**
 * bench/recovery.mjs — how long does ringstream take to come back after a crash with a
 * long, never-checkpointed WAL?
 *
 * 1. Starts `bin/ringstream.js` (durability fsync) on a fresh temporary data directory with
 *    checkpoints effectively disabled (--checkpoint-interval-ms 3600000,
 *    --checkpoint-wal-bytes 100000000000), creates S streams (application/octet-stream).
 * 2. Appends N records of exactly 64 random bytes, spread round-robin over the streams, over
 *    many concurrent keep-alive HTTP connections. Each POST is one WAL record. At most one
 *    append per stream is in flight, so each stream's content order is deterministic.
 * 3. SIGKILLs the server as soon as the last append is acknowledged (no graceful shutdown,
 *    hence no checkpoint: everything must be replayed from the WAL).
 * 4. Restarts the server RUNS times (default 3) on the directory as the crash left it (a copy
 *    is put back before each restart: a long replay is checkpointed right after it), SIGKILLing
 *    it each time after verification; measures wall time from spawn() to the "listening" line and the
 *    server's own "recovered <n> WAL records ... in <ms> ms" figure. Reports medians.
 * 5. After every restart, verifies that the sum of Stream-Next-Offset byte positions over all
 *    streams equals N * 64 and that a few streams' content is byte-identical to what was sent.
 * 6. Prints a summary and writes bench/results/recovery.json.
 *
 * Usage (after `npm run build`):
 *   node bench/recovery.mjs [--records N] [--streams N] [--quick] [--runs N]
 *                           [--concurrency N] [--tmp-base DIR] [--keep]
 *   --records N       records to append (default 1000000)
 *   --streams N       streams to spread them over (default 1000)
 *   --quick           100000 records (unless --records is also given)
 *   --runs N          kill/restart measurements (default 3)
 *   --concurrency N   appends in flight = keep-alive connections (default 128)
 *   --tmp-base DIR    where to create the temporary data directory (default os.tmpdir())
 *   --out FILE        results file (default bench/results/recovery.json)
 *   --keep            leave the data directory in place (its path is printed) to restart on it by hand
 *
 * Plain ESM JavaScript on purpose: Node 20 cannot run TypeScript directly, and the benchmark
 * only talks to the compiled CLI over HTTP.
 */

import { spawn, execFileSync } from 'node:child_process'
import { randomFillSync } from 'node:crypto'
import { cpSync, mkdtempSync, mkdirSync, readdirSync, statSync, rmSync, writeFileSync, openSync, readSync, closeSync, readFileSync } from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const RECORD_BYTES = 64
const HERE = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.resolve(HERE, '..')
const CLI = path.join(ROOT, 'bin', 'ringstream.js')
const SPOT_CHECK_STREAMS = 5
const START_TIMEOUT_MS = 120_000

// ---------------------------------------------------------------------------------------------
// Options

const { values: opts } = parseArgs({
  options: {
    records: { type: 'string' },
    streams: { type: 'string' },
    quick: { type: 'boolean' },
    runs: { type: 'string' },
    concurrency: { type: 'string' },
    'tmp-base': { type: 'string' },
    out: { type: 'string' },
    keep: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
  allowPositionals: false,
})

if (opts.help) {
  const source = readFileSync(fileURLToPath(import.meta.url), 'utf8')
  console.log(source.slice(source.indexOf('/**'), source.indexOf('*/') + 2))
  process.exit(0)
}

function positiveInt(name, raw, fallback) {
  if (raw === undefined) return fallback
  if (!/^\d+$/.test(raw) || Number(raw) <= 0) throw new Error(`${name} must be a positive integer, got "${raw}"`)
  return Number(raw)
}

const RECORDS = positiveInt('--records', opts.records, opts.quick ? 100_000 : 1_000_000)
const STREAMS = positiveInt('--streams', opts.streams, 1000)
const RUNS = positiveInt('--runs', opts.runs, 3)
const CONCURRENCY = Math.min(positiveInt('--concurrency', opts.concurrency, 128), STREAMS)
const OUT = path.resolve(opts.out ?? path.join(HERE, 'results', 'recovery.json'))

// ---------------------------------------------------------------------------------------------
// Cleanup: children and the temp dir go away however we leave.

const children = new Set()
let dataDir
let cleanedUp = false

function cleanup() {
  if (cleanedUp) return
  cleanedUp = true
  for (const child of children) {
    try {
      child.kill('SIGKILL')
    } catch {}
  }
  children.clear()
  if (dataDir !== undefined && opts.keep) console.log(`recovery bench: kept ${dataDir}`)
  else if (dataDir !== undefined) {
    try {
      rmSync(dataDir, { recursive: true, force: true })
    } catch (error) {
      console.error(`bench: could not remove ${dataDir}: ${error.message}`)
    }
  }
}

process.on('exit', cleanup)
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    console.error(`bench: ${signal}, cleaning up`)
    cleanup()
    process.exit(130)
  })
}

// ---------------------------------------------------------------------------------------------
// Server process

/**
 * Spawns the CLI and resolves once it prints the listening line.
 * @returns {Promise<{child: import('node:child_process').ChildProcess, port: number, wallMs: number,
 *   recovered: {records: number, checkpointLsn: number, ms: number, line: string} | undefined, output: string[]}>}
 */
function startServer(dir) {
  const args = [
    CLI,
    '--port', '0',
    '--data-dir', dir,
    '--durability', 'fsync',
    '--checkpoint-interval-ms', '3600000',
    '--checkpoint-wal-bytes', '100000000000',
  ]
  const started = performance.now()
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  child.once('exit', () => children.delete(child))
  const output = []
  return new Promise((resolve, reject) => {
    let recovered
    let settled = false
    const fail = (message) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      try {
        child.kill('SIGKILL')
      } catch {}
      const error = new Error(`${message} after ${(performance.now() - started).toFixed(0)} ms\n--- server output ---\n${output.join('\n')}`)
      error.serverOutput = [...output]
      error.wallMs = performance.now() - started
      reject(error)
    }
    const timer = setTimeout(() => fail(`server did not start within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS)
    const onLine = (line) => {
      output.push(line)
      const rec = /recovered (\d+) WAL records after checkpoint LSN (\d+) in (\d+(?:\.\d+)?) ms/.exec(line)
      if (rec !== null) recovered = { records: Number(rec[1]), checkpointLsn: Number(rec[2]), ms: Number(rec[3]), line }
      const listen = /listening on http:\/\/[^:]+:(\d+)\//.exec(line)
      if (listen !== null && !settled) {
        const wallMs = performance.now() - started
        settled = true
        clearTimeout(timer)
        resolve({ child, port: Number(listen[1]), wallMs, recovered, output })
      }
    }
    lines(child.stdout, onLine)
    lines(child.stderr, (line) => {
      onLine(line)
      if (settled) console.error(`server stderr: ${line}`)
    })
    child.once('error', (error) => fail(`spawn failed: ${error.message}`))
    child.once('exit', (code, signal) => fail(`server exited early (code ${code}, signal ${signal})`))
  })
}

function lines(stream, onLine) {
  let pending = ''
  stream.setEncoding('utf8')
  stream.on('data', (chunk) => {
    pending += chunk
    let newline
    while ((newline = pending.indexOf('\n')) !== -1) {
      onLine(pending.slice(0, newline))
      pending = pending.slice(newline + 1)
    }
  })
}

/** SIGKILL and wait until the process is really gone (so the next start owns the directory). */
function kill(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => {
    child.once('exit', () => resolve())
    child.kill('SIGKILL')
  })
}

// ---------------------------------------------------------------------------------------------
// HTTP

/**
 * One request; resolves with status, headers and body.
 * @returns {Promise<{status: number, headers: import('node:http').IncomingHttpHeaders, body: Buffer}>}
 */
function request(agent, port, method, urlPath, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { agent, host: '127.0.0.1', port, method, path: urlPath, headers: body === undefined ? headers : { ...headers, 'content-length': body.length } },
      (res) => {
        const chunks = []
        res.on('data', (chunk) => chunks.push(chunk))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    if (body === undefined) req.end()
    else req.end(body)
  })
}

const streamPath = (index) => `/v1/stream/bench-${String(index).padStart(6, '0')}`

/** Byte length from a Stream-Next-Offset value like 0000000000000000_0000000000000123. */
function offsetBytes(value) {
  const match = /^\d+_(\d+)$/.exec(String(value ?? ''))
  if (match === null) throw new Error(`unexpected Stream-Next-Offset "${value}"`)
  return Number(match[1])
}

async function runPool(count, concurrency, task) {
  let next = 0
  const worker = async () => {
    while (next < count) {
      const index = next++
      await task(index)
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker))
}

async function createStreams(agent, port) {
  await runPool(STREAMS, CONCURRENCY, async (s) => {
    const res = await request(agent, port, 'PUT', streamPath(s), Buffer.alloc(0), { 'content-type': 'application/octet-stream' })
    if (res.status !== 201) throw new Error(`PUT ${streamPath(s)}: HTTP ${res.status} ${res.body.toString()}`)
  })
}

/**
 * Appends RECORDS records of RECORD_BYTES random bytes; record i goes to stream i % STREAMS.
 * Worker w owns the streams s with s % CONCURRENCY === w and sends their records in order, one
 * at a time, so each stream has at most one append in flight.
 * @returns {Promise<{ms: number, sent: Map<number, Buffer[]>}>}
 */
async function load(agent, port, spotStreams) {
  const sent = new Map(spotStreams.map((s) => [s, []]))
  let acknowledged = 0
  let lastReport = performance.now()
  const started = performance.now()
  const worker = async (w) => {
    const pool = Buffer.allocUnsafe(RECORD_BYTES * 1024)
    let poolUsed = pool.length
    // Records of this worker, in increasing record index: i = s + k * STREAMS.
    const mine = []
    for (let s = w; s < STREAMS; s += CONCURRENCY) mine.push(s)
    for (let k = 0; ; k++) {
      let any = false
      for (const s of mine) {
        const i = s + k * STREAMS
        if (i >= RECORDS) break
        any = true
        if (poolUsed === pool.length) {
          randomFillSync(pool)
          poolUsed = 0
        }
        const record = pool.subarray(poolUsed, poolUsed + RECORD_BYTES)
        poolUsed += RECORD_BYTES
        const res = await request(agent, port, 'POST', streamPath(s), record, { 'content-type': 'application/octet-stream' })
        if (res.status !== 204 && res.status !== 200) throw new Error(`POST ${streamPath(s)} (record ${i}): HTTP ${res.status} ${res.body.toString()}`)
        const kept = sent.get(s)
        if (kept !== undefined) kept.push(Buffer.from(record))
        acknowledged++
        if (w === 0 && performance.now() - lastReport > 5000) {
          lastReport = performance.now()
          const secs = (lastReport - started) / 1000
          process.stdout.write(`  ... ${acknowledged.toLocaleString('en-US')} appends acknowledged, ${Math.round(acknowledged / secs).toLocaleString('en-US')}/s\n`)
        }
      }
      if (!any) break
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, w) => worker(w)))
  if (acknowledged !== RECORDS) throw new Error(`acknowledged ${acknowledged} appends, expected ${RECORDS}`)
  return { ms: performance.now() - started, sent }
}

/** Reads a whole stream, following Stream-Next-Offset until the server says up to date. */
async function readStream(agent, port, s) {
  const chunks = []
  let offset = '-1'
  for (let guard = 0; guard < 100_000; guard++) {
    const res = await request(agent, port, 'GET', `${streamPath(s)}?offset=${offset}`)
    if (res.status !== 200) throw new Error(`GET ${streamPath(s)}?offset=${offset}: HTTP ${res.status} ${res.body.toString()}`)
    chunks.push(res.body)
    const next = res.headers['stream-next-offset']
    if (res.headers['stream-up-to-date'] === 'true' || res.body.length === 0 || next === undefined || next === offset) break
    offset = String(next)
  }
  return Buffer.concat(chunks)
}

/** Checks totals and spot-checked content; returns a description of what was checked. */
async function verify(agent, port, sent) {
  let total = 0
  const perStreamExpected = (s) => (Math.floor(RECORDS / STREAMS) + (s < RECORDS % STREAMS ? 1 : 0)) * RECORD_BYTES
  const wrongStreams = []
  const lengths = new Array(STREAMS)
  await runPool(STREAMS, 32, async (s) => {
    const res = await request(agent, port, 'HEAD', streamPath(s))
    if (res.status !== 200) throw new Error(`HEAD ${streamPath(s)}: HTTP ${res.status}`)
    lengths[s] = offsetBytes(res.headers['stream-next-offset'])
  })
  for (let s = 0; s < STREAMS; s++) {
    total += lengths[s]
    if (lengths[s] !== perStreamExpected(s)) wrongStreams.push(`${streamPath(s)}: ${lengths[s]} bytes, expected ${perStreamExpected(s)}`)
  }
  const expectedTotal = RECORDS * RECORD_BYTES
  if (total !== expectedTotal || wrongStreams.length > 0) {
    throw new Error(`verification failed: total stream bytes ${total}, expected ${expectedTotal}; ${wrongStreams.length} streams wrong:\n  ${wrongStreams.slice(0, 20).join('\n  ')}`)
  }
  for (const [s, records] of sent) {
    const expected = Buffer.concat(records)
    const actual = await readStream(agent, port, s)
    if (!actual.equals(expected)) {
      let at = 0
      while (at < Math.min(actual.length, expected.length) && actual[at] === expected[at]) at++
      throw new Error(`verification failed: ${streamPath(s)} content differs (got ${actual.length} bytes, sent ${expected.length}; first difference at byte ${at})`)
    }
  }
  return { totalBytes: total, spotChecked: [...sent.keys()].map(streamPath) }
}

// ---------------------------------------------------------------------------------------------
// WAL on disk

/** Apparent and allocated sizes of everything in dir/wal, plus the bytes actually framed. */
function walStats(dir) {
  const walDir = path.join(dir, 'wal')
  let apparentBytes = 0
  let allocatedBytes = 0
  let usedBytes = 0
  const files = []
  for (const name of readdirSync(walDir).sort()) {
    const file = path.join(walDir, name)
    const st = statSync(file)
    if (!st.isFile()) continue
    apparentBytes += st.size
    allocatedBytes += st.blocks * 512
    files.push({ name, bytes: st.size })
    if (name.endsWith('.wal')) usedBytes += framedBytes(file, st.size)
  }
  return { apparentBytes, allocatedBytes, usedBytes, files }
}

/**
 * Walks a segment's frames (u32 crc | u32 bodyLength | body; a zero length ends the written
 * part of a preallocated segment) and returns how many bytes hold records.
 */
function framedBytes(file, size) {
  const fd = openSync(file, 'r')
  try {
    const header = Buffer.alloc(4)
    let position = 0
    while (position + 8 <= size) {
      if (readSync(fd, header, 0, 4, position + 4) !== 4) break
      const length = header.readUInt32LE(0)
      if (length === 0 || position + 8 + length > size) break
      position += 8 + length
    }
    return position
  } finally {
    closeSync(fd)
  }
}

// ---------------------------------------------------------------------------------------------
// Reporting helpers

function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

function machine() {
  let nproc
  try {
    nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim())
  } catch {
    nproc = os.availableParallelism()
  }
  let cpuModel = os.cpus()[0]?.model ?? 'unknown'
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))
    if (match !== null) cpuModel = match[1].trim()
  } catch {}
  let filesystem
  try {
    filesystem = execFileSync('df', ['-PT', dataDir], { encoding: 'utf8' }).trim().split('\n')[1]?.split(/\s+/)[1]
  } catch {}
  return {
    nproc,
    cpuModel,
    memTotalMiB: Math.round(os.totalmem() / 1048576),
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    dataDirFilesystem: filesystem,
    date: new Date().toISOString(),
  }
}

const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`
const ms = (value) => `${value.toFixed(0)} ms`

// ---------------------------------------------------------------------------------------------
// Main

/** What has been measured so far; written even when a later step fails. */
let results

function writeResults() {
  mkdirSync(path.dirname(OUT), { recursive: true })
  writeFileSync(OUT, `${JSON.stringify(results, null, 2)}\n`)
}

async function main() {
  dataDir = mkdtempSync(path.join(opts['tmp-base'] ?? os.tmpdir(), 'ringstream-recovery-'))
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY, maxFreeSockets: CONCURRENCY })
  console.log(`recovery bench: ${RECORDS.toLocaleString('en-US')} records x ${RECORD_BYTES} B over ${STREAMS} streams, ${CONCURRENCY} in flight, data dir ${dataDir}`)
  results = {
    benchmark: 'recovery',
    status: 'running',
    machine: machine(),
    config: { durability: 'fsync', checkpointIntervalMs: 3600000, checkpointWalBytes: 100000000000, concurrency: CONCURRENCY, streams: STREAMS },
    records: RECORDS,
    recordBytes: RECORD_BYTES,
    streamBytes: RECORDS * RECORD_BYTES,
  }

  // 0. Baseline: start-up on an empty directory (process boot + module load + empty recovery).
  const emptyDir = path.join(dataDir, 'empty')
  mkdirSync(emptyDir)
  const empty = await startServer(emptyDir)
  await kill(empty.child)
  rmSync(emptyDir, { recursive: true, force: true })
  results.emptyDirStartWallMs = Math.round(empty.wallMs)
  console.log(`empty-directory start: ${ms(empty.wallMs)} wall (server recovery ${empty.recovered?.ms ?? '?'} ms)`)

  // 1. Load.
  const dir = path.join(dataDir, 'data')
  mkdirSync(dir)
  const first = await startServer(dir)
  await createStreams(agent, first.port)
  const spotStreams = Array.from({ length: Math.min(SPOT_CHECK_STREAMS, STREAMS) }, (_, k) => Math.floor((k * STREAMS) / Math.min(SPOT_CHECK_STREAMS, STREAMS)))
  spotStreams[spotStreams.length - 1] = STREAMS - 1
  const loaded = await load(agent, first.port, [...new Set(spotStreams)])
  // 2. Crash right after the last acknowledgement.
  await kill(first.child)
  agent.destroy()
  const loadRate = RECORDS / (loaded.ms / 1000)
  results.load = { ms: Math.round(loaded.ms), appendsPerSecond: Math.round(loadRate) }
  console.log(`load: ${RECORDS.toLocaleString('en-US')} appends in ${(loaded.ms / 1000).toFixed(1)} s = ${Math.round(loadRate).toLocaleString('en-US')} appends/s; server SIGKILLed`)
  const wal = walStats(dir)
  results.walSizeOnDisk = {
    bytes: wal.apparentBytes,
    allocatedBytes: wal.allocatedBytes,
    framedRecordBytes: wal.usedBytes,
    files: wal.files,
    note: 'bytes = sum of apparent sizes of files in DIR/wal (segments are preallocated, and a spare segment is prepared ahead); framedRecordBytes = bytes actually holding WAL records',
  }
  console.log(`WAL on disk: ${wal.files.length} files, ${mb(wal.apparentBytes)} apparent (preallocated), ${mb(wal.allocatedBytes)} allocated, ${mb(wal.usedBytes)} of framed records`)

  // 3. Restart, measure, verify, kill — RUNS times. Each restart starts from the directory as
  // the crash left it: a start that replays this much checkpoints right after (a crash loop
  // must not replay it again), so the next restart would measure an empty replay.
  const crashed = `${dir}.crashed`
  cpSync(dir, crashed, { recursive: true })
  const runs = []
  results.runs = runs
  for (let run = 1; run <= RUNS; run++) {
    if (run > 1) {
      rmSync(dir, { recursive: true, force: true })
      cpSync(crashed, dir, { recursive: true })
    }
    let server
    try {
      server = await startServer(dir)
    } catch (error) {
      results.restartFailure = { run, wallMsUntilExit: Math.round(error.wallMs ?? NaN), serverOutput: error.serverOutput }
      throw error
    }
    const runAgent = new http.Agent({ keepAlive: true, maxSockets: 32 })
    try {
      if (server.recovered === undefined) throw new Error(`no "recovered" line in server output:\n${server.output.join('\n')}`)
      const entry = { run, wallMs: Math.round(server.wallMs), serverRecoveryMs: server.recovered.ms, walRecordsReplayed: server.recovered.records, checkpointLsn: server.recovered.checkpointLsn, recoveredLine: server.recovered.line }
      runs.push(entry)
      const checked = await verify(runAgent, server.port, loaded.sent)
      entry.verifiedTotalBytes = checked.totalBytes
      console.log(`restart ${run}: ${ms(server.wallMs)} wall to listening, server recovery ${ms(server.recovered.ms)} (${server.recovered.records.toLocaleString('en-US')} records after checkpoint LSN ${server.recovered.checkpointLsn}); verified ${checked.totalBytes.toLocaleString('en-US')} bytes + ${checked.spotChecked.length} streams' content`)
    } finally {
      runAgent.destroy()
      await kill(server.child)
    }
  }

  const wallRuns = runs.map((r) => r.wallMs)
  const recoveryRuns = runs.map((r) => r.serverRecoveryMs)
  results.restartWallMs = { median: Math.round(median(wallRuns)), runs: wallRuns }
  results.serverRecoveryMs = { median: median(recoveryRuns), runs: recoveryRuns }
  results.verification = { expectedTotalBytes: RECORDS * RECORD_BYTES, spotCheckedStreams: [...loaded.sent.keys()].map(streamPath), passed: true }
  results.status = 'ok'
  writeResults()

  console.log('')
  console.log(`summary (${results.machine.nproc} cores, ${results.machine.cpuModel}, node ${results.machine.node}):`)
  console.log(`  records            ${RECORDS.toLocaleString('en-US')} x ${RECORD_BYTES} B over ${STREAMS} streams`)
  console.log(`  load               ${Math.round(loadRate).toLocaleString('en-US')} appends/s (fsync, ${CONCURRENCY} in flight)`)
  console.log(`  WAL on disk        ${mb(wal.apparentBytes)} (${wal.files.length} files; ${mb(wal.usedBytes)} of records)`)
  console.log(`  restart wall       median ${ms(median(wallRuns))}  [${wallRuns.map(ms).join(', ')}]  (empty dir: ${ms(empty.wallMs)})`)
  console.log(`  server recovery    median ${ms(median(recoveryRuns))}  [${recoveryRuns.map(ms).join(', ')}]`)
  console.log(`  verification       passed (total ${mb(RECORDS * RECORD_BYTES)}, ${loaded.sent.size} streams byte-compared)`)
  console.log(`  results            ${path.relative(process.cwd(), OUT) || OUT}`)
}

main()
  .catch((error) => {
    console.error(`bench failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}`)
    if (results !== undefined) {
      results.status = 'failed'
      results.error = error instanceof Error ? error.message : String(error)
      try {
        writeResults()
        console.error(`partial results written to ${path.relative(process.cwd(), OUT) || OUT}`)
      } catch {}
    }
    process.exitCode = 1
  })
  .finally(cleanup)
