#!/usr/bin/env node
/**
 * bench/instructions.mjs — user-space instructions per append, counted by valgrind's callgrind.
 * The count repeats to within ~0.3% whatever else the machine is doing, so a change to the
 * request path can be measured here, where appends/s moves by ±20% from run to run. Kernel
 * work (TCP, I/O) is not counted: this measures what our code, V8 and uWS execute.
 *
 * The server runs twice under callgrind, once taking `--small` and once `--large` producer
 * appends per stream (100 streams, 256-byte bodies, 32 connections: the load generator's fill
 * mode); the difference of the totals divided by the difference of the appends leaves out
 * start-up and shutdown.
 *
 *   node bench/instructions.mjs [--durability memory|buffered|fsync] [--small 50] [--large 250]
 *   node bench/instructions.mjs --server null      the same load on bench/null-server.mjs
 *
 * Needs valgrind (Debian package `valgrind`) and a built server (`npm run build`). File I/O
 * goes through node:fs (`--io fs`): callgrind does not follow io_uring's kernel workers.
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.resolve(HERE, '..')
const LOADGEN = path.join(HERE, 'loadgen', 'build', 'loadgen')
const STREAMS = 100

const { values } = parseArgs({
  options: {
    durability: { type: 'string', default: 'memory' },
    /** `null`: bench/null-server.mjs, the floor (uWS and one JS callback per request). */
    server: { type: 'string', default: 'ringstream' },
    small: { type: 'string', default: '50' },
    large: { type: 'string', default: '250' },
    port: { type: 'string', default: '18190' },
  },
})
const small = Number(values.small)
const large = Number(values.large)
if (!(small > 0 && large > small)) throw new Error('--large must be greater than --small, both positive')

if (spawnSync('valgrind', ['--version']).status !== 0) throw new Error('valgrind not found (Debian package valgrind)')
if (!existsSync(path.join(ROOT, 'dist', 'cli.js'))) throw new Error('no dist/: run npm run build first')
if (!existsSync(LOADGEN)) {
  mkdirSync(path.dirname(LOADGEN), { recursive: true })
  const cc = spawnSync('cc', ['-O2', '-o', LOADGEN, path.join(HERE, 'loadgen', 'loadgen.c')], { stdio: 'inherit' })
  if (cc.status !== 0) throw new Error('compiling the load generator failed')
}

/** Instructions of one server lifetime that takes `count` appends per stream. */
async function countRun(count) {
  const work = mkdtempSync(path.join(HERE, '.data', 'instructions-'))
  const out = path.join(work, 'callgrind.out')
  const server = spawn(
    'valgrind',
    ['--tool=callgrind', `--callgrind-out-file=${out}`, '--smc-check=all-non-file',
      'node', ...(values.server === 'null'
        ? [path.join(HERE, 'null-server.mjs'), '--port', values.port]
        : [path.join(ROOT, 'bin', 'ringstream.js'), '--port', values.port, '--durability', values.durability, '--io', 'fs', '--data-dir', path.join(work, 'data')])],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let output = ''
  server.stdout.on('data', (chunk) => (output += chunk))
  server.stderr.on('data', (chunk) => (output += chunk))
  const exited = new Promise((resolve) => server.on('exit', resolve))
  const started = Date.now()
  while (!output.includes('listening')) {
    if (Date.now() - started > 120_000 || server.exitCode !== null) throw new Error(`server did not start:\n${output}`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  const load = spawnSync(
    LOADGEN,
    ['--mode', 'fill', '--port', values.port, '--prefix', '/v1/stream/i-', '--streams', String(STREAMS), '--conns', '32',
      '--count', String(count), '--body', '256', '--timeout-ms', '60000', '--phase-timeout-ms', '900000', ...(values.server === 'null' ? ['--no-verify'] : [])],
    { encoding: 'utf8' },
  )
  const result = JSON.parse(load.stdout.trim().split('\n').at(-1) ?? '{}')
  server.kill('SIGINT')
  await exited
  if (load.status !== 0 || result.failed || result.totalAppends !== count * STREAMS) {
    throw new Error(`load generator: ${load.stderr || result.failReason || `${result.totalAppends} appends`}`)
  }
  const totals = /^totals: (\d+)/m.exec(readFileSync(out, 'utf8'))
  rmSync(work, { recursive: true, force: true })
  if (totals === null) throw new Error('no totals line in the callgrind output')
  return Number(totals[1])
}

mkdirSync(path.join(HERE, '.data'), { recursive: true })
const a = await countRun(small)
const b = await countRun(large)
const perAppend = Math.round((b - a) / ((large - small) * STREAMS))
console.log(`${values.server === 'null' ? 'null handler' : `durability ${values.durability}`}: ${a} instructions for ${small * STREAMS} appends, ${b} for ${large * STREAMS}`)
console.log(`user-space instructions per append: ${perAppend}`)
