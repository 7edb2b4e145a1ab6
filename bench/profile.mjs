#!/usr/bin/env node
/**
 * bench/profile.mjs — where the write path's CPU goes: the server runs alone on core 0 under
 * `perf record` (cpu-clock samples with call stacks; node's --perf-basic-prof names JIT
 * frames) while the load generator drives the write load from core 1. The samples are folded
 * into stacks and aggregated three ways, written beside a flame graph:
 *
 *   <out>/<name>.folded.gz    one line per distinct stack: `frame;frame;… count` (gzip)
 *   <out>/<name>.svg          the flame graph of those stacks
 *   <out>/<name>.md           self time by function and by file (JS file or native library)
 *
 *   node bench/profile.mjs [--server fsync|memory|buffered|null] [--streams 100] [--conns 64]
 *                          [--seconds 5] [--body 256] [--json-records N] [--fanout K] [--out bench/results/profile] [--name NAME]
 *   --server broadcast: bench/broadcast-server.mjs (with --fanout)
 *
 * Needs perf (Debian linux-perf; software cpu-clock events do where hardware counters do not),
 * taskset, cc and a built server (`npm run build`). File I/O goes through node:fs unless
 * `--io uring` is given.
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { gzipSync } from 'node:zlib'
import { flameGraph } from './lib/flame.mjs'
import { foldPerfScript, selfTimes } from './lib/perf-fold.mjs'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.resolve(HERE, '..')
const LOADGEN = path.join(HERE, 'loadgen', 'build', 'loadgen')

const { values } = parseArgs({
  options: {
    server: { type: 'string', default: 'fsync' },
    io: { type: 'string', default: 'fs' },
    streams: { type: 'string', default: '100' },
    conns: { type: 'string', default: '64' },
    seconds: { type: 'string', default: '5' },
    body: { type: 'string', default: '256' },
    /** Each append a JSON array of this many records of --body bytes (batched JSON). */
    'json-records': { type: 'string' },
    /** Profile SSE fan-out instead: this many subscribers, one writer at 50 events/s. */
    fanout: { type: 'string' },
    port: { type: 'string', default: '18191' },
    out: { type: 'string', default: path.join(HERE, 'results', 'profile') },
    name: { type: 'string' },
  },
})
const batch = values['json-records'] === undefined ? [] : ['--json-records', values['json-records']]
const name = values.name ?? `${values.server === 'null' ? 'null' : values.server === 'broadcast' ? 'broadcast' : `${values.server}-${values.io}`}${batch.length > 0 ? '-json-batch' : ''}${values.fanout !== undefined ? `-fanout-${values.fanout}` : ''}`
if (!existsSync(LOADGEN)) {
  mkdirSync(path.dirname(LOADGEN), { recursive: true })
  const cc = spawnSync('cc', ['-O2', '-o', LOADGEN, path.join(HERE, 'loadgen', 'loadgen.c')], { stdio: 'inherit' })
  if (cc.status !== 0) throw new Error('compiling the load generator failed')
}

const work = mkdtempSync(path.join(HERE, '.data-profile-'))
const nodeFlags = ['--perf-basic-prof', '--interpreted-frames-native-stack']
const serverArgs = values.server === 'null' || values.server === 'broadcast'
  ? [path.join(HERE, `${values.server}-server.mjs`), '--port', values.port]
  : [path.join(ROOT, 'bin', 'ringstream.js'), '--port', values.port, '--durability', values.server, '--io', values.io,
      '--data-dir', path.join(work, 'data')]
const server = spawn('taskset', ['-c', '0', process.execPath, ...nodeFlags, ...serverArgs], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
let output = ''
server.stdout.on('data', (chunk) => (output += chunk))
server.stderr.on('data', (chunk) => (output += chunk))
const exited = new Promise((resolve) => server.on('exit', resolve))
try {
  const started = Date.now()
  while (!output.includes('listening')) {
    if (Date.now() - started > 30_000 || server.exitCode !== null) throw new Error(`server did not start:\n${output}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  const seconds = Number(values.seconds)
  const perfData = path.join(work, 'perf.data')
  // Recording starts after the load generator's warm-up (1 s) and its stream creation.
  const shape = values.fanout === undefined
    ? ['--mode', 'write', '--streams', values.streams, '--conns', values.conns, '--body', values.body, ...batch, ...(values.server === 'null' ? ['--no-verify'] : [])]
    : ['--mode', 'fanout', '--subs', values.fanout, '--rate', '50', '--body', '256', '--grace-ms', '3000']
  const load = spawn('taskset', ['-c', '1', LOADGEN, ...shape, '--port', values.port, '--prefix', '/v1/stream/p-', '--warmup-ms', '2000',
    '--duration-ms', String(seconds * 1000 + 1000), '--timeout-ms', '5000', '--phase-timeout-ms', '60000'], { stdio: ['ignore', 'pipe', 'inherit'] })
  let loadOut = ''
  load.stdout.on('data', (chunk) => (loadOut += chunk))
  const loaded = new Promise((resolve) => load.on('exit', resolve))
  await new Promise((resolve) => setTimeout(resolve, 2500))
  const perf = spawnSync('taskset', ['-c', '1', 'perf', 'record', '-e', 'cpu-clock', '-F', '1999', '--call-graph', 'fp',
    '-p', String(server.pid), '-o', perfData, '--', 'sleep', String(seconds)], { encoding: 'utf8' })
  if (perf.status !== 0) throw new Error(`perf record failed: ${perf.stderr}`)
  await loaded
  const result = JSON.parse(loadOut.trim().split('\n').at(-1) ?? '{}')
  const script = spawnSync('perf', ['script', '-i', perfData, '-F', 'ip,sym,dso', '--no-inline'], { encoding: 'utf8', maxBuffer: 1 << 30 })
  if (script.status !== 0) throw new Error(`perf script failed: ${script.stderr}`)
  const stacks = foldPerfScript(script.stdout)
  mkdirSync(values.out, { recursive: true })
  const folded = [...stacks].map(([stack, count]) => `${stack} ${count}`).join('\n')
  writeFileSync(path.join(values.out, `${name}.folded.gz`), gzipSync(`${folded}\n`))
  const what = batch.length > 0 ? `appends of ${values['json-records']} JSON records of ${values.body} bytes` : `${values.body}-byte appends`
  const title = values.fanout === undefined
    ? `${name}: ${values.streams} streams, ${values.conns} connections, ${what}, ${Math.round(result.appendsPerSecond ?? 0)} appends/s under perf`
    : `${name}: 1 writer at 50 events/s to ${values.fanout} SSE subscribers, delivery p50 ${((result.delivery?.p50Us ?? 0) / 1000).toFixed(2)} ms under perf`
  writeFileSync(path.join(values.out, `${name}.svg`), flameGraph(stacks, title))
  writeFileSync(path.join(values.out, `${name}.md`), report(title, stacks, result))
  console.log(`${title}\nwrote ${path.join(values.out, name)}.{folded.gz,svg,md}`)
} finally {
  server.kill('SIGKILL')
  await exited
  rmSync(work, { recursive: true, force: true })
  rmSync(`/tmp/perf-${server.pid}.map`, { force: true })
}

function report(title, stacks, result) {
  const { total, byFunction, byFile, byKind, inclusive } = selfTimes(stacks)
  const perRequest = (count) => (result.appendsPerSecond > 0 ? ` | ${((count / total) * 1e6 / result.appendsPerSecond).toFixed(2)}` : ' | –')
  const rows = (map, n) => [...map].sort((a, b) => b[1] - a[1]).slice(0, n)
    .map(([key, count]) => `| ${((count / total) * 100).toFixed(1)}%${perRequest(count)} | \`${key.replaceAll('|', '\\|')}\` |`).join('\n')
  return `# ${title}\n\n${total} samples at 1999 Hz on one busy core. µs/append = the share of one core's second over the appends/s under perf (perf costs some throughput).\n\n` +
    `## Self time by kind of code\n\n| share | µs/append | kind |\n|---|---|---|\n${rows(byKind, 10)}\n\n` +
    `## Self time by file (JS file, or native library)\n\n| share | µs/append | file |\n|---|---|---|\n${rows(byFile, 25)}\n\n` +
    `## Self time by function (top 60)\n\n| share | µs/append | function |\n|---|---|---|\n${rows(byFunction, 60)}\n\n` +
    `## Our JS functions including what they call (top 40)\n\n| share | µs/append | function |\n|---|---|---|\n${rows(inclusive, 40)}\n`
}
