#!/usr/bin/env node
/**
 * bench/cluster.mjs — what the proxy costs, and what a second node gives, on this machine.
 * The write scenario of bench/run.mjs (the C load generator: 100 streams, 32 connections,
 * 256-byte appends, fsync class, every stream verified afterwards) against:
 *   direct    one ringstream node on core 0, the load generator on core 1
 *   proxy-1   the same node behind HAProxy (deploy/haproxy.cfg), HAProxy on core 1 with
 *             the load generator: the client side pays for the proxy, the node's budget is the same
 *   proxy-2   two nodes (core 0, core 1) behind HAProxy, HAProxy and the load generator on
 *             both cores: what "one node per core" does when nothing is left for the clients
 * the reference server (file mode) direct, and the null uWS handler direct (the load
 * generator's ceiling). Rounds are interleaved
 * (order reversed every other round). Writes bench/results/cluster.json.
 *
 *   node bench/cluster.mjs [--rounds 3] [--seconds 5]
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.resolve(HERE, '..')
const LOADGEN = path.join(HERE, 'loadgen', 'build', 'loadgen')
const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, seconds: { type: 'string', default: '5' } } })
const work = mkdtempSync(path.join(tmpdir(), 'ringstream-cluster-bench-'))
const children = new Set()
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL')
  rmSync(work, { recursive: true, force: true })
})

let nextPort = 19700
function spawnPinned(cores, command, args, env = {}) {
  const child = spawn('taskset', ['-c', cores, command, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_ENV: 'production', ...env } })
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

async function waitFor(url, anyAnswer = false) {
  for (let i = 0; i < 200; i++) {
    try {
      const res = await fetch(url)
      if (res.ok || anyAnswer) return
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`${url} did not come up`)
}

async function node(core, clusterUrl) {
  const port = nextPort++
  const args = [path.join(ROOT, 'bin', 'ringstream.js'), '--port', String(port), '--data-dir', mkdtempSync(path.join(work, 'node-')), '--durability', 'fsync']
  if (clusterUrl !== undefined) args.push('--cluster-url', clusterUrl, '--node-url', `http://127.0.0.1:${port}`)
  spawnPinned(core, process.execPath, args)
  await waitFor(`http://127.0.0.1:${port}/readyz`)
  return port
}

async function haproxy(core, port, nodePorts) {
  const template = readFileSync(path.join(ROOT, 'deploy', 'haproxy.cfg'), 'utf8')
  const servers = nodePorts.map((p, i) => `  server node${i + 1} 127.0.0.1:${p}\n`).join('')
  const config = template.replace(/^ {2}# @SERVERS@.*\n(?: {2}server .*\n)*/m, servers)
  const file = path.join(work, `haproxy-${port}.cfg`)
  writeFileSync(file, config)
  spawnPinned(core, 'haproxy', ['-db', '-f', file], { RINGSTREAM_PROXY_BIND: `127.0.0.1:${port}` })
  await waitFor(`http://127.0.0.1:${port}/healthz`)
}

function loadgen(cores, port) {
  const args = ['--mode', 'write', '--port', String(port), '--prefix', `/v1/stream/bench-${nextPort}-`, '--streams', '100', '--conns', '32', '--body', '256', '--warmup-ms', '1000', '--duration-ms', String(Number(values.seconds) * 1000), '--timeout-ms', '5000', '--phase-timeout-ms', '60000']
  return new Promise((resolve, reject) => {
    const child = spawnPinned(cores, LOADGEN, args)
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.once('exit', () => {
      const result = JSON.parse(out.trim().split('\n').pop())
      const errors = Object.entries(result.errors).filter(([k, v]) => k !== 'first' && v > 0)
      if (result.failed || !result.verify?.done || result.verify.contentMismatches > 0 || result.verify.lengthMismatches > 0 || errors.length > 0) reject(new Error(`loadgen: ${JSON.stringify(result).slice(0, 400)}`))
      else resolve(result)
    })
  })
}

async function stopAll() {
  const exits = [...children].map((child) => new Promise((resolve) => child.once('exit', resolve)))
  for (const child of children) child.kill('SIGTERM')
  await Promise.all(exits)
}

const SCENARIOS = {
  async direct() {
    return loadgen('1', await node('0'))
  },
  async 'proxy-1'() {
    const proxyPort = nextPort++
    const port = await node('0', `http://127.0.0.1:${proxyPort}`)
    await haproxy('1', proxyPort, [port])
    return loadgen('1', proxyPort)
  },
  async 'proxy-2'() {
    const proxyPort = nextPort++
    const a = await node('0', `http://127.0.0.1:${proxyPort}`)
    const b = await node('1', `http://127.0.0.1:${proxyPort}`)
    await haproxy('0,1', proxyPort, [a, b])
    return loadgen('0,1', proxyPort)
  },
  async reference() {
    const port = nextPort++
    spawnPinned('0', process.execPath, [path.join(HERE, 'ref-server.mjs'), '--port', String(port), '--data-dir', mkdtempSync(path.join(work, 'ref-'))])
    await waitFor(`http://127.0.0.1:${port}/`, true)
    return loadgen('1', port)
  },
  async null() {
    const port = nextPort++
    spawnPinned('0', process.execPath, [path.join(HERE, 'null-server.mjs'), '--port', String(port)])
    await new Promise((resolve) => setTimeout(resolve, 500))
    const args = ['--mode', 'write', '--port', String(port), '--prefix', '/x-', '--streams', '100', '--conns', '32', '--body', '256', '--warmup-ms', '1000', '--duration-ms', String(Number(values.seconds) * 1000), '--no-verify']
    return new Promise((resolve) => {
      const child = spawnPinned('1', LOADGEN, args)
      let out = ''
      child.stdout.on('data', (d) => (out += d))
      child.once('exit', () => resolve(JSON.parse(out.trim().split('\n').pop())))
    })
  },
}

const results = Object.fromEntries(Object.keys(SCENARIOS).map((id) => [id, []]))
for (let round = 0; round < Number(values.rounds); round++) {
  const ids = round % 2 === 0 ? Object.keys(SCENARIOS) : Object.keys(SCENARIOS).reverse()
  for (const id of ids) {
    const result = await SCENARIOS[id]()
    results[id].push({ appendsPerSecond: Math.round(result.appendsPerSecond), p50Us: Math.round(result.latency.p50Us), p99Us: Math.round(result.latency.p99Us) })
    await stopAll()
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const summary = Object.fromEntries(Object.entries(results).map(([id, runs]) => [id, { appendsPerSecond: median(runs.map((r) => r.appendsPerSecond)), p50Us: median(runs.map((r) => r.p50Us)), p99Us: median(runs.map((r) => r.p99Us)), runs }]))
const d = summary.direct
const p = summary['proxy-1']
const report = {
  date: new Date().toISOString(),
  scenario: 'write, fsync, 100 streams, 32 connections, 256-byte appends',
  summary,
  proxyOverDirect: +(p.appendsPerSecond / d.appendsPerSecond).toFixed(3),
  proxyP50AddedUs: p.p50Us - d.p50Us,
  twoNodesOverOne: +(summary['proxy-2'].appendsPerSecond / p.appendsPerSecond).toFixed(3),
  directOverReference: +(d.appendsPerSecond / summary.reference.appendsPerSecond).toFixed(3),
}
writeFileSync(path.join(HERE, 'results', 'cluster.json'), `${JSON.stringify(report, null, 2)}\n`)
for (const [id, s] of Object.entries(summary)) console.log(`${id.padEnd(8)} ${String(s.appendsPerSecond).padStart(7)} appends/s  p50 ${s.p50Us} µs  p99 ${s.p99Us} µs  (${s.runs.map((r) => r.appendsPerSecond).join(', ')})`)
console.log(`proxy/direct ${report.proxyOverDirect} (p50 +${report.proxyP50AddedUs} µs); two nodes/one node through the proxy ${report.twoNodesOverOne}`)
