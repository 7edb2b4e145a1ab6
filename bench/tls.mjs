#!/usr/bin/env node
/**
 * bench/tls.mjs — what HTTPS costs: the same ringstream build served plain and with
 * --tls-cert/--tls-key (a fresh self-signed certificate), and the null uWS handler (plain:
 * the client's own ceiling), under one write load from bench/https-load.mjs. The server is
 * pinned to core 0 and the client to core 1 (taskset); rounds are interleaved (plain, TLS,
 * null, then reversed) so drift hits every server alike. Reports appends/s per server and
 * the TLS/plain ratio per durability class, plus the server's own CPU time per append (from
 * /proc: the client pays for TLS too, on its own core, and may be what limits appends/s),
 * and writes bench/results/tls.json.
 *
 *   node bench/tls.mjs [--rounds 3] [--seconds 5] [--connections 16]
 */
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.resolve(HERE, '..')
const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, seconds: { type: 'string', default: '5' }, connections: { type: 'string', default: '16' } } })
const work = mkdtempSync(path.join(tmpdir(), 'ringstream-tls-bench-'))
const cert = path.join(work, 'cert.pem')
const key = path.join(work, 'key.pem')
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' })

async function start(args) {
  const child = spawn('taskset', ['-c', '0', process.execPath, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_ENV: 'production' } })
  let seen = ''
  for await (const chunk of child.stdout) {
    seen += chunk
    const match = /listening on (https?:\/\/[^\s/]+)/.exec(seen)
    if (match) return { child, url: match[1] }
  }
  throw new Error(`server exited: ${seen}`)
}

async function load(url, prefix) {
  const args = [path.join(HERE, 'https-load.mjs'), '--url', url, '--ca', cert, '--connections', values.connections, '--seconds', values.seconds, '--prefix', prefix]
  const out = execFileSync('taskset', ['-c', '1', process.execPath, ...args], { encoding: 'utf8' })
  const result = JSON.parse(out.trim().split('\n').pop())
  if (result.errors > 0) throw new Error(`${url}: ${result.errors} failed appends`)
  return result.appends / result.seconds
}

const configs = []
for (const durability of ['memory', 'fsync']) {
  for (const tls of [false, true]) configs.push({ id: `rs-${durability}-${tls ? 'tls' : 'plain'}`, durability, tls })
}
configs.push({ id: 'null-plain', null: true })
const results = Object.fromEntries(configs.map((c) => [c.id, []]))
const cpuPerAppend = Object.fromEntries(configs.map((c) => [c.id, []]))
/** CPU seconds (user + system) the process has used so far. */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}
for (let round = 0; round < Number(values.rounds); round++) {
  const order = round % 2 === 0 ? configs : [...configs].reverse()
  for (const config of order) {
    const dataDir = mkdtempSync(path.join(work, 'data-'))
    const args = config.null
      ? [path.join(HERE, 'null-server.mjs'), '--port', '0']
      : [path.join(ROOT, 'bin', 'ringstream.js'), '--port', '0', '--data-dir', dataDir, '--durability', config.durability, ...(config.tls ? ['--tls-cert', cert, '--tls-key', key] : [])]
    const { child, url } = await start(args)
    const cpuBefore = cpuSeconds(child.pid)
    const started = performance.now()
    const rate = await load(url, `${config.id}-${round}`)
    const appends = rate * ((performance.now() - started) / 1000)
    results[config.id].push(rate)
    cpuPerAppend[config.id].push(((cpuSeconds(child.pid) - cpuBefore) / appends) * 1e6)
    child.kill('SIGTERM')
    await new Promise((resolve) => child.once('exit', resolve))
    rmSync(dataDir, { recursive: true, force: true })
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const summary = Object.fromEntries(Object.entries(results).map(([id, xs]) => [id, { median: Math.round(median(xs)), runs: xs.map(Math.round), serverCpuUsPerAppend: Math.round(median(cpuPerAppend[id])) }]))
const ratios = Object.fromEntries(['memory', 'fsync'].map((d) => [d, +(summary[`rs-${d}-tls`].median / summary[`rs-${d}-plain`].median).toFixed(3)]))
const cpuRatios = Object.fromEntries(['memory', 'fsync'].map((d) => [d, +(summary[`rs-${d}-tls`].serverCpuUsPerAppend / summary[`rs-${d}-plain`].serverCpuUsPerAppend).toFixed(3)]))
const report = { date: new Date().toISOString(), node: process.version, connections: Number(values.connections), seconds: Number(values.seconds), bodyBytes: 256, appendsPerSecond: summary, tlsOverPlain: ratios, serverCpuTlsOverPlain: cpuRatios }
writeFileSync(path.join(HERE, 'results', 'tls.json'), `${JSON.stringify(report, null, 2)}\n`)
for (const [id, { median: m, runs, serverCpuUsPerAppend }] of Object.entries(summary)) console.log(`${id.padEnd(16)} ${String(m).padStart(7)} appends/s  server ${serverCpuUsPerAppend} µs CPU/append  (${runs.join(', ')})`)
console.log(`TLS / plain appends/s: memory ${ratios.memory}, fsync ${ratios.fsync}; server CPU per append: memory ${cpuRatios.memory}, fsync ${cpuRatios.fsync}`)
rmSync(work, { recursive: true, force: true })
