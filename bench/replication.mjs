#!/usr/bin/env node
/**
 * bench/replication.mjs — what replication costs: the write scenario of bench/run.mjs (fsync
 * class, 256-byte idempotent appends, 64 connections, S streams, every stream read back and
 * checked) against
 *   lone          one ringstream node, no etcd, on core 0 (bench/run.mjs's rs-fsync-uring)
 *   shard-core0   a 3-replica shard: the three nodes and etcd all on core 0, the same CPU
 *                 budget as the lone node
 *   shard-spread  the same shard, leader on core 0, both followers and etcd on core 1 beside
 *                 the load generator (a second view: the followers no longer take the
 *                 leader's core, they take the client's)
 * with the load generator on core 1 and sent straight to the leader; runs interleaved
 * (lone, shard-core0, shard-spread, lone, … per repeat). Then failover: the leader of a
 * shard on core 0 SIGKILLed N times under a light load (10 appends/s), every surviving node
 * polled with an append every 10 ms until one answers 2xx; the killed node restarts after
 * 1 s, and the next kill waits for a leader with two followers.
 *
 * Usage: node bench/replication.mjs [--quick] [--kills N] [--at REF] [--no-build] [--repeat N]
 *          [--duration S] [--warmup S] [--write-streams 100,1000] [--tmp-base DIR]
 *          [--out-dir DIR] [--quiet-wait S] [--no-retry-noisy]
 *   --quick   1 repeat, bench/run.mjs's short windows, 3 kills; to bench/results/quick/
 *   --at REF  measure commit REF (exported and built in a temporary directory, with this
 *             checkout's node_modules and native build) instead of this working tree
 *   --render FILE  only write replication.md again, beside FILE (a replication.json)
 * Writes replication.json and replication.md to bench/results/ (see bench/README.md).
 */

import { spawn, spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { setMaxListeners } from 'node:events'
import http from 'node:http'
import { createServer as createNetServer } from 'node:net'
import os from 'node:os'
import path from 'node:path'

// Options of this script only; the rest are bench/run.mjs's, parsed strictly by
// bench/lib/options.mjs as it loads, so ours leave argv before the imports below.
if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(readFileSync(new URL(import.meta.url), 'utf8').match(/\/\*\*[\s\S]*?\*\//)[0])
  process.exit(0)
}
const ownOption = (name) => {
  const at = process.argv.indexOf(name)
  return at > 0 ? process.argv.splice(at, 2)[1] : undefined
}
const killsArg = ownOption('--kills')
const atRef = ownOption('--at')

const { fmtCpu, fmtInt, fmtMs, median, round } = await import('./lib/format.mjs')
const { build, machineFacts, waitQuiet } = await import('./lib/machine.mjs')
const { ROOT, argv, opts, quick } = await import('./lib/options.mjs')
const { CLIENT_CORE, SERVER_CORE, cleanup, lastLines, live, log, runLoadgen, sleep, tempDirs } = await import('./lib/processes.mjs')
const { baseRecord, measure, runWrite, runs } = await import('./lib/scenarios.mjs')
const { LABEL, SERVERS, startRssSampler } = await import('./lib/servers.mjs')
const { summarize } = await import('./lib/summary.mjs')

const ETCD_BIN = '/usr/bin/etcd'
const LONE = 'rs-fsync-uring' // bench/run.mjs's server: --durability fsync --io uring, core 0
const IO = 'uring' // the replicas use the lone node's backend
const REPLICAS = 3
const LAYOUTS = {
  'shard-core0': { leader: SERVER_CORE, followers: SERVER_CORE, etcd: SERVER_CORE },
  'shard-spread': { leader: SERVER_CORE, followers: CLIENT_CORE, etcd: CLIENT_CORE },
}
LABEL['shard-core0'] = '3 replicas + etcd, all on core 0'
LABEL['shard-spread'] = '3 replicas, leader on core 0, followers + etcd on core 1'
const LEASE_TTL_MS = 2000 // the server's default --lease-ttl-ms, named here for the report
const SHARD_READY_TIMEOUT_MS = 60_000
const STATUS_POLL_MS = 50
const FAILOVER_POLL_MS = 10
const FAILOVER_TIMEOUT_MS = 30_000
const RESTART_AFTER_MS = 1000
const LIGHT_LOAD_INTERVAL_MS = 100
/** The hypervisor's steal (cores) and the disk's busy fraction above which a run is not measured as it is. */
const STEAL_MAX = 0.1
const DISK_BUSY_MAX = 0.05
const STEAL_RETRIES = 3
const STEAL_PAUSE_MS = 15_000

opts.writeStreams = argv['write-streams'] === undefined ? [100, 1000] : opts.writeStreams
// Each run here starts up to four processes; on this shared VM waiting longer for quiet is cheaper than a noisy run.
if (argv['quiet-wait'] === undefined) opts.quietWaitS = quick ? 3 : 30
let serverRoot = ROOT // the checkout whose bin/ringstream.js runs (--at: a temporary export)
const kills = killsArg === undefined ? (quick ? 3 : 10) : Number(killsArg)
if (!(Number.isInteger(kills) && kills > 0)) throw new Error('--kills needs a positive integer')

// ---------------------------------------------------------------------------------------------
// etcd and the shard's nodes

/** A port free on 127.0.0.1 below the ephemeral range, so a killed node gets its port back. */
async function freePort() {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000)
    const free = await new Promise((resolve) => {
      const probe = createNetServer()
      probe.once('error', () => resolve(false))
      probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)))
    })
    if (free) return port
  }
}

/** Spawns `command` pinned to `core` into `proc` (child, pid, output tail, exited); killed at exit by processes.mjs. */
function spawnPinned(core, command, args, proc = {}) {
  const child = spawn('taskset', ['-c', core, command, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_ENV: 'production' } })
  live.add(child)
  Object.assign(proc, { child, pid: child.pid, output: '', listeningAt: undefined })
  const onData = (d) => {
    proc.output += d.toString()
    proc.listeningAt ??= /listening on http:\/\//.test(proc.output) ? performance.now() : undefined
    if (proc.output.length > 200_000) proc.output = proc.output.slice(-100_000)
  }
  child.stdout.on('data', onData)
  child.stderr.on('data', onData)
  proc.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  proc.exited.then(() => live.delete(child))
  return proc
}

async function kill(proc) {
  if (proc === undefined) return
  try {
    process.kill(proc.pid, 'SIGKILL')
  } catch {}
  await Promise.race([proc.exited, sleep(3000)])
}

async function startEtcd(core) {
  const dir = mkdtempSync(path.join(opts.tmpBase, 'ringstream-etcd-'))
  tempDirs.add(dir)
  const [clientPort, peerPort] = [await freePort(), await freePort()]
  const url = `http://127.0.0.1:${clientPort}`
  const peer = `http://127.0.0.1:${peerPort}`
  const etcd = spawnPinned(core, ETCD_BIN, ['--name', 'bench', '--data-dir', path.join(dir, 'data'), '--listen-client-urls', url, '--advertise-client-urls', url, '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `bench=${peer}`, '--initial-cluster-state', 'new'])
  etcd.url = url
  const deadline = Date.now() + 20_000
  for (;;) {
    const health = await getJson(`${url}/health`)
    if (health?.health === 'true') return etcd
    if (etcd.child.exitCode !== null || Date.now() > deadline) throw new Error(`etcd not healthy: ${lastLines(etcd.output, 3).join(' | ')}`)
    await sleep(STATUS_POLL_MS)
  }
}

async function getJson(url) {
  try {
    return await (await fetch(url, { signal: AbortSignal.timeout(1000) })).json()
  } catch {
    return undefined
  }
}

/** Starts (or restarts, on the same port and data) one replica. */
function spawnNode(node) {
  const args = [path.join(serverRoot, 'bin', 'ringstream.js'), '--etcd', node.etcd, '--replicas', String(REPLICAS), '--node-id', node.id, '--shard', '1', '--durability', 'fsync', '--io', IO, '--data-dir', node.dataDir, '--port', String(node.port), '--node-url', `http://127.0.0.1:${node.port}`]
  node.killed = false
  spawnPinned(node.core, process.execPath, args, node)
  node.starts = (node.starts ?? 0) + 1
}

/** etcd and three replicas, each on a fresh data directory; resolves with the leader once it serves with two followers. */
async function startShard(layoutId) {
  const layout = LAYOUTS[layoutId]
  const shard = { layout: layoutId, etcd: await startEtcd(layout.etcd), nodes: [], stepDowns: [] }
  for (let i = 1; i <= REPLICAS; i++) {
    const dataDir = mkdtempSync(path.join(opts.tmpBase, `ringstream-replica-${i}-`))
    tempDirs.add(dataDir)
    const node = { id: `r${i}`, core: SERVER_CORE, etcd: shard.etcd.url, dataDir, port: await freePort() }
    spawnNode(node)
    shard.nodes.push(node)
  }
  shard.leader = await waitServing(shard)
  // Only now is it known which node leads: move each to its layout's core (every thread, -a).
  for (const node of shard.nodes) {
    node.core = node === shard.leader ? layout.leader : layout.followers
    const r = spawnSync('taskset', ['-a', '-p', '-c', node.core, String(node.pid)], { stdio: 'ignore' })
    if (r.status !== 0) throw new Error(`taskset could not move ${node.id} (pid ${node.pid}) to core ${node.core}`)
  }
  for (const node of shard.nodes) node.listenLine = node.output.split('\n').find((l) => /listening on http:\/\//.test(l))?.trim()
  return shard
}

/** Polls /statusz until one node leads and serves with two followers that serve too. */
async function waitServing(shard, timeoutMs = SHARD_READY_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const statuses = await Promise.all(shard.nodes.map((n) => getJson(`http://127.0.0.1:${n.port}/statusz`)))
    const at = statuses.findIndex((s) => s?.role === 'leader' && s.problem === null && s.followers.length === REPLICAS - 1)
    const following = statuses.filter((s) => s?.role === 'follower' && s.problem === null && s.leader?.nodeId === statuses[at]?.node)
    if (at >= 0 && following.length === REPLICAS - 1) return shard.nodes[at]
    const dead = shard.nodes.find((n) => n.child.exitCode !== null && !shard.supervised)
    if (dead) throw new Error(`replica ${dead.id} exited: ${lastLines(dead.output, 3).join(' | ')}`)
    if (Date.now() > deadline) throw new Error(`no leader with ${REPLICAS - 1} followers within ${timeoutMs} ms: ${JSON.stringify(statuses.map((s) => s && { node: s.node, role: s.role, problem: s.problem }))}`)
    await sleep(STATUS_POLL_MS)
  }
}

async function stopShard(shard) {
  if (shard === undefined) return
  shard.stopping = true
  await Promise.all([...shard.nodes.map(kill), kill(shard.etcd)])
}

// ---------------------------------------------------------------------------------------------
// Quiet beyond CPU: waitQuiet (bench/lib) sees busy CPU, not the hypervisor's steal nor other
// work on the disk: steal has cut fsync-class figures here by up to 5×, and another
// session's fsyncs on the same disk slow them too.

let disk = '' // the data directory's block device, e.g. vda (set in main)

function stealAndDiskTicks() {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/)
  const stats = readFileSync('/proc/diskstats', 'utf8').split('\n').map((l) => l.trim().split(/\s+/)).find((f) => f[2] === disk)
  return { t: performance.now(), steal: Number(cpu[8]) * 10, ioTicks: stats === undefined ? NaN : Number(stats[12]) }
}

/** Waits (up to --quiet-wait) for a second with no steal and an idle disk. */
async function waitSteady() {
  const deadline = Date.now() + opts.quietWaitS * 1000
  for (;;) {
    const a = stealAndDiskTicks()
    await sleep(1000)
    const b = stealAndDiskTicks()
    const steady = { stealCpu: round((b.steal - a.steal) / (b.t - a.t), 3), diskBusy: round((b.ioTicks - a.ioTicks) / (b.t - a.t), 3) }
    if (steady.stealCpu < STEAL_MAX && !(steady.diskBusy >= DISK_BUSY_MAX)) return steady
    if (Date.now() > deadline) return { ...steady, noisy: true }
  }
}

/** Runs a write measurement after waitSteady; again (up to 3 times, after a pause) if the
 * hypervisor stole more than STEAL_MAX cores in its window, keeping the run with the least
 * steal. A run stolen from every time is kept as 'stolen': out of the medians, in the report. */
async function steadyRun(fn) {
  const steal = (r) => r.loadgen?.stealCpu ?? 0
  let record
  const discarded = []
  for (let attempt = 0; attempt <= STEAL_RETRIES; attempt++) {
    if (attempt > 0) await sleep(STEAL_PAUSE_MS)
    const steady = await waitSteady()
    const next = await fn()
    next.steady = steady
    if (record !== undefined) {
      const [keep, drop] = steal(next) <= steal(record) ? [next, record] : [record, next]
      discarded.push({ stealCpu: steal(drop), status: drop.status, appendsPerSecond: drop.loadgen?.appendsPerSecond, p50Us: drop.loadgen?.latency?.p50Us })
      record = keep
    } else record = next
    if (steal(next) <= STEAL_MAX || record.status === 'unavailable') break
    if (attempt < STEAL_RETRIES) log(`         (the hypervisor stole ${steal(next).toFixed(2)} cores during that window; measuring again)`)
  }
  if (discarded.length) record.discardedStolenRuns = discarded
  if (steal(record) > STEAL_MAX && record.status === 'ok') {
    record.status = 'stolen'
    record.error = `the hypervisor stole ${steal(record).toFixed(2)} cores in the least stolen of ${discarded.length + 1} attempts`
  }
  return record
}

// ---------------------------------------------------------------------------------------------
// Writes

/** CPU (ns, all threads) of each pid, and the machine's irq + softirq time (pid 0; no process
 * is charged with it), every 50 ms: the load generator sees only the leader. */
function startCpuSampler(pids) {
  const read = (pid) => {
    try {
      if (pid === 0) return readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(6, 8).reduce((sum, ticks) => sum + Number(ticks) * 1e7, 0)
      return readdirSync(`/proc/${pid}/task`).reduce((sum, tid) => sum + Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]), 0)
    } catch {
      return NaN
    }
  }
  const samples = []
  const take = () => samples.push({ t: performance.now(), ns: pids.map(read) })
  take()
  const timer = setInterval(take, 50)
  return {
    /** Cores each pid used between t0 and t1 (ms, performance.now()), interpolated between samples. */
    stop(t0, t1) {
      clearInterval(timer)
      take()
      const at = (t, i) => {
        const j = samples.findIndex((s) => s.t >= t)
        if (j <= 0) return samples[j < 0 ? samples.length - 1 : 0].ns[i]
        const [a, b] = [samples[j - 1], samples[j]]
        return a.ns[i] + ((b.ns[i] - a.ns[i]) * (t - a.t)) / (b.t - a.t)
      }
      return pids.map((_, i) => round((at(t1, i) - at(t0, i)) / 1e6 / (t1 - t0), 3))
    },
  }
}

/** The write scenario's load, as bench/lib/scenarios.mjs runWrite sends it. */
function writeArgs(port, pid, streams) {
  return [
    '--mode', 'write', '--port', String(port), '--prefix', '/v1/stream/bench-',
    '--streams', String(streams), '--conns', String(opts.conns), '--body', String(opts.writeBody),
    '--warmup-ms', String(Math.round(opts.warmupS * 1000)), '--duration-ms', String(Math.round(opts.durationS * 1000)),
    '--timeout-ms', '5000', '--phase-timeout-ms', String(quick ? 30_000 : 60_000), '--server-pid', String(pid),
  ]
}

/** runWrite for a shard: the load goes to the leader; followers' and etcd's CPU is measured here. */
async function runShardWrite(layoutId, streams, rep) {
  const record = baseRecord('write', layoutId, { streams }, rep)
  let shard
  try {
    record.quiet = await waitQuiet()
    shard = await startShard(layoutId)
    const { leader } = shard
    const followers = shard.nodes.filter((n) => n !== leader)
    record.serverLine = leader.listenLine
    record.shard = { leader: leader.id, cores: Object.fromEntries(shard.nodes.map((n) => [n.id, n.core])), etcdCore: LAYOUTS[layoutId].etcd }
    const rss = startRssSampler(leader.pid)
    const cpu = startCpuSampler([...followers.map((n) => n.pid), shard.etcd.pid, 0])
    const spawned = performance.now()
    const result = await runLoadgen(writeArgs(leader.port, leader.pid, streams))
    record.rss = rss.stop()
    record.loadgen = result
    // The window starts after stream creation and the warm-up (connecting takes ~1 ms more).
    const windowStart = spawned + (result.createMs ?? 0) + opts.warmupS * 1000
    const [f1, f2, etcdCpu, interrupts] = cpu.stop(windowStart, windowStart + (result.windowSeconds ?? opts.durationS) * 1000)
    record.shardCpu = { leader: result.serverCpu, followers: [f1, f2], etcd: etcdCpu, irqAndSoftirq: interrupts }
    // The load generator counts the followers and etcd as "other"; what is left is other work.
    if (typeof result.otherCpu === 'number' && result.otherCpu > -0.5) {
      result.otherCpuWithShard = result.otherCpu
      result.otherCpu = round(result.otherCpu - f1 - f2 - etcdCpu, 4)
    }
    judge(record, result)
    const dead = shard.nodes.find((n) => n.child.exitCode !== null || n.child.signalCode !== null)
    if (dead) {
      record.status = 'failed'
      record.error = [record.error, `replica ${dead.id} died: ${lastLines(dead.output, 3).join(' | ')}`].filter(Boolean).join('; ')
    }
    if (record.status !== 'ok') record.serverOutput = shard.nodes.map((n) => `${n.id}: ${lastLines(n.output, 4).join(' | ')}`)
  } catch (error) {
    record.status = 'failed'
    record.error = error.message
    if (shard) record.serverOutput = shard.nodes.map((n) => `${n.id}: ${lastLines(n.output, 4).join(' | ')}`)
  } finally {
    await stopShard(shard)
  }
  return record
}

/** runWrite's verdict on a load generator result. */
function judge(record, result) {
  const v = result.verify
  if (result.failed) {
    record.status = 'failed'
    record.error = result.failReason
  } else if (!v?.done || v.lengthMismatches > 0 || v.contentMismatches > 0 || v.deadStreams > 0) {
    record.status = 'failed'
    record.error = `verification: ${v?.lengthMismatches ?? '?'} length mismatches, ${v?.contentMismatches ?? '?'} content mismatches, ${v?.deadStreams ?? '?'} streams given up${v?.example ? `; e.g. ${v.example}` : ''}`
  }
  const e = result.errors ?? {}
  record.errorCount = (e.status4xx ?? 0) + (e.status5xx ?? 0) + (e.timeouts ?? 0) + (e.connErrors ?? 0) + (e.parseErrors ?? 0)
  if (record.errorCount > 0 && record.status === 'ok') record.status = 'errors'
  if (record.errorCount > 0) record.error = [record.error, `errors: ${JSON.stringify(e)}`].filter(Boolean).join('; ')
}

// ---------------------------------------------------------------------------------------------
// Failover

const agent = new http.Agent({ keepAlive: true })

/** One append of a few bytes; resolves with the status, or 0 for a failed or timed-out request. */
function append(port, timeoutMs, signal) {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/stream/failover', agent, timeout: timeoutMs, signal, headers: { 'Content-Type': 'application/octet-stream' } }, (res) => {
      res.resume()
      res.once('end', () => resolve(res.statusCode))
      res.once('error', () => resolve(0))
    })
    req.once('timeout', () => req.destroy())
    req.once('error', () => resolve(0))
    req.end('failover')
  })
}

/** Every 10 ms an append to each survivor; resolves at the first 2xx answer. */
function firstAnswer(survivors, killedAt) {
  return new Promise((resolve, reject) => {
    const stop = new AbortController()
    setMaxListeners(0, stop.signal) // one listener per request in flight
    const statuses = {}
    let sent = 0
    const finish = (value) => {
      clearInterval(timer)
      clearTimeout(deadline)
      stop.abort()
      resolve({ ...value, sent, statuses })
    }
    const timer = setInterval(() => {
      for (const node of survivors) {
        sent++
        append(node.port, 2000, stop.signal).then((status) => {
          statuses[status] = (statuses[status] ?? 0) + 1
          if (status >= 200 && status < 300) finish({ ms: round(performance.now() - killedAt, 1), answeredBy: node.id, status })
        })
      }
    }, FAILOVER_POLL_MS)
    const deadline = setTimeout(() => {
      clearInterval(timer)
      stop.abort()
      reject(new Error(`no 2xx within ${FAILOVER_TIMEOUT_MS} ms of the kill (statuses ${JSON.stringify(statuses)})`))
    }, FAILOVER_TIMEOUT_MS)
  })
}

/** Restarts a replica 1 s after it ends, as a supervisor would (a leader that steps down exits). */
function supervise(shard, node) {
  node.exited.then(async () => {
    if (shard.stopping) return
    if (!node.killed) shard.stepDowns.push({ node: node.id, output: lastLines(node.output, 3) })
    await sleep(RESTART_AFTER_MS)
    if (shard.stopping) return
    spawnNode(node)
    supervise(shard, node)
  })
}

async function runFailover() {
  const out = { kills: [], leaseTtlMs: LEASE_TTL_MS, pollMs: FAILOVER_POLL_MS, restartAfterMs: RESTART_AFTER_MS, layout: 'shard-core0' }
  let shard
  let light
  let begin
  try {
    out.steady = await waitSteady()
    out.quiet = await waitQuiet()
    begin = stealAndDiskTicks()
    shard = await startShard('shard-core0')
    shard.supervised = true
    for (const node of shard.nodes) supervise(shard, node)
    const put = await fetch(`http://127.0.0.1:${shard.leader.port}/v1/stream/failover`, { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream' } })
    if (!put.ok) throw new Error(`creating the stream: ${put.status} ${await put.text()}`)
    // The light load: 10 appends a second to whichever node leads (as last seen).
    light = { ok: 0, failed: 0 }
    light.timer = setInterval(() => append(shard.leader.port, 1000).then((s) => (s >= 200 && s < 300 ? light.ok++ : light.failed++)), LIGHT_LOAD_INTERVAL_MS)
    for (let k = 1; k <= kills; k++) {
      const readyAt = performance.now()
      shard.leader = await waitServing(shard)
      const settledMs = round(performance.now() - readyAt)
      // A random moment within the leader's lease renewals, not always the same phase.
      await sleep(1000 + Math.random() * 1000)
      const victim = shard.leader
      const survivors = shard.nodes.filter((n) => n !== victim)
      // What the leader's lease had left in its own view, a few ms before the kill.
      const leaseRemainingMs = (await getJson(`http://127.0.0.1:${victim.port}/statusz`))?.leaseRemainingMs ?? null
      victim.killed = true
      const killedAt = performance.now()
      process.kill(victim.pid, 'SIGKILL')
      const answer = await firstAnswer(survivors, killedAt)
      const leader = await waitServing(shard)
      const restartListeningMs = victim.listeningAt === undefined ? null : round(victim.listeningAt - killedAt)
      const run = { kill: k, killed: victim.id, ...answer, leaseRemainingMs, restartListeningMs, newLeader: leader.id, servingAgainMs: round(performance.now() - killedAt), previousSettleMs: settledMs }
      out.kills.push(run)
      log(`failover kill ${k}: ${victim.id} killed (lease ${leaseRemainingMs} ms left), first 2xx after ${run.ms} ms from ${run.answeredBy}, restarted node listening after ${restartListeningMs} ms; ${leader.id} leads with 2 followers after ${run.servingAgainMs} ms (${run.sent} polls: ${JSON.stringify(run.statuses)})`)
    }
    out.status = 'ok'
  } catch (error) {
    out.status = 'failed'
    out.error = error.message
    log(`failover: failed: ${error.message}`)
    if (shard) out.serverOutput = shard.nodes.map((n) => `${n.id}: ${lastLines(n.output, 4).join(' | ')}`)
  } finally {
    if (light) clearInterval(light.timer)
    await stopShard(shard)
  }
  const ms = out.kills.map((k) => k.ms).sort((a, b) => a - b)
  const rank = (p) => ms[Math.max(0, Math.ceil(p * ms.length) - 1)] ?? null // nearest rank
  Object.assign(out, { medianMs: median(ms), p90Ms: rank(0.9), maxMs: ms.length ? ms[ms.length - 1] : null, minMs: ms[0] ?? null })
  if (light) out.lightLoad = { ok: light.ok, failed: light.failed }
  if (begin) out.stealCpu = round((stealAndDiskTicks().steal - begin.steal) / (performance.now() - begin.t), 3) // over the whole phase
  if (shard) out.stepDowns = shard.stepDowns
  return out
}

// ---------------------------------------------------------------------------------------------
// Report

function compare(summary) {
  const rows = []
  for (const S of opts.writeStreams) {
    const lone = summary.write[LONE]?.[S]
    for (const id of [LONE, ...Object.keys(LAYOUTS)]) {
      const s = summary.write[id]?.[S]
      if (s === undefined) continue
      const cpus = runs.filter((r) => r.server === id && r.streams === S && r.shardCpu).map((r) => r.shardCpu)
      rows.push({
        streams: S, setup: id, label: id === LONE ? 'lone node on core 0' : LABEL[id], status: s.status,
        appendsPerSecond: round(s.appendsPerSecond), appendsPerSecondRuns: s.appendsPerSecondRuns, p50Us: round(s.p50Us), p99Us: round(s.p99Us),
        overLone: id === LONE || !lone?.appendsPerSecond ? null : round(s.appendsPerSecond / lone.appendsPerSecond, 3),
        p99AddedMs: id === LONE || lone?.p99Us == null ? null : round((s.p99Us - lone.p99Us) / 1000, 1),
        leaderCpu: round(s.serverCpu, 2), followerCpu: cpus.length ? round(median(cpus.flatMap((c) => c.followers)), 2) : null, etcdCpu: cpus.length ? round(median(cpus.map((c) => c.etcd)), 3) : null,
        irqAndSoftirqCpu: cpus.length ? round(median(cpus.map((c) => c.irqAndSoftirq)), 2) : null,
        loadgenCpu: round(s.loadgenCpu, 2), otherCpuMax: round(s.otherCpuMax, 2), errors: s.errors,
        stolenRuns: runs.filter((r) => r.server === id && r.streams === S && r.status === 'stolen').map((r) => round(r.loadgen.appendsPerSecond)),
      })
    }
  }
  return rows
}

const signed = (v) => (v === null ? '–' : `${v >= 0 ? '+' : '−'}${Math.abs(v)}`)

function markdown(result) {
  const m = result.machine
  const f = result.failover
  const x = (r) => (r === null ? '–' : `${r.toFixed(2)}×`)
  const lines = [
    '# Replication cost (`bench/replication.mjs`)',
    '',
    `Measured ${m.date.slice(0, 10)} by \`node bench/replication.mjs${result.argv.length ? ` ${result.argv.join(' ')}` : ''}\` (${result.build.workingTree ? `working tree at ${result.build.commit.slice(0, 7)}${result.build.uncommittedSrc.length ? ' with uncommitted src/ changes' : ''}` : `commit ${result.build.commit.slice(0, 7)}, built apart`}) on ${m.nproc} × ${m.cpuModel}, ${m.kernel}, Node ${m.node}, data on ${m.filesystem.split(' ').slice(0, 2).join(' ')} (${m.disk || 'disk unknown'}). ` +
      `Durability fsync, io ${IO}, ${opts.conns} connections, ${opts.writeBody}-byte idempotent appends, warm-up ${opts.warmupS} s, window ${opts.durationS} s, ${opts.repeat} repeat(s) interleaved (lone, shard-core0, shard-spread, …): medians. Every stream read back and compared byte for byte.`,
    '',
    '## Writes',
    '',
    '| S | setup | appends/s | p50 ms | p99 ms | replicated / lone | p99 added ms | CPU: leader / each follower / etcd / irq+softirq | runs (appends/s) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...result.writes.map((r) => `| ${r.streams} | ${r.label}${r.status === 'ok' ? '' : ` **${r.status}**`}${r.stolenRuns.length ? ` (left out, stolen from: ${r.stolenRuns.map(fmtInt).join(', ')})` : ''} | ${fmtInt(r.appendsPerSecond)} | ${fmtMs(r.p50Us)} | ${fmtMs(r.p99Us)} | ${x(r.overLone)} | ${signed(r.p99AddedMs)} | ${fmtCpu(r.leaderCpu)}${r.followerCpu === null ? '' : ` / ${fmtCpu(r.followerCpu)} / ${fmtCpu(r.etcdCpu)} / ${fmtCpu(r.irqAndSoftirqCpu)}`} | ${r.appendsPerSecondRuns.map(fmtInt).join(', ')} |`),
    '',
    'CPU in cores over the measured window: the leader (or lone node) as the load generator measures it; each follower (median of both), etcd and the interrupt time no process is charged with (irq + softirq: loopback TCP, disk completions; shard runs only) sampled by this script every 50 ms. ' +
      `Runs during which the hypervisor stole more than ${STEAL_MAX} cores were measured again after a pause (up to ${STEAL_RETRIES} times), keeping the least stolen; the load generator on core 1 used ${fmtCpu(Math.min(...result.writes.map((r) => r.loadgenCpu)))}–${fmtCpu(Math.max(...result.writes.map((r) => r.loadgenCpu)))} cores; other work (in shard runs: besides the followers and etcd) at most ${fmtCpu(Math.max(...result.writes.map((r) => r.otherCpuMax ?? 0)))} cores in a kept window (runs above 0.25 are measured again, as in bench/run.mjs).`,
    '',
    '## Failover',
    '',
    `The leader of a shard on core 0 SIGKILLed ${f.kills.length} times (${f.status}${f.error ? `: ${f.error}` : ''}), lease TTL ${f.leaseTtlMs} ms (the default), each kill at a random moment 1–2 s after the shard served with two followers, under 10 appends/s to the leader; from the kill, every ${f.pollMs} ms an append to each surviving node until one answers 2xx; the killed node restarted ${f.restartAfterMs} ms after the kill, and the next kill waited for a leader with two followers.`,
    '',
    '| kills | median ms | p90 ms | max ms | min ms |',
    '| --- | --- | --- | --- | --- |',
    `| ${f.kills.length} | ${fmtInt(f.medianMs)} | ${fmtInt(f.p90Ms)} | ${fmtInt(f.maxMs)} | ${fmtInt(f.minMs)} |`,
    '',
    '| kill | killed → new leader | first 2xx ms | lease left at the kill ms | 2xx − lease left ms | killed node listening again ms | leader + 2 followers ms |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...f.kills.map((k) => `| ${k.kill} | ${k.killed} → ${k.newLeader} (2xx from ${k.answeredBy}) | ${fmtInt(k.ms)} | ${fmtInt(k.leaseRemainingMs)} | ${k.leaseRemainingMs === null ? '–' : fmtInt(k.ms - k.leaseRemainingMs)} | ${fmtInt(k.restartListeningMs)} | ${fmtInt(k.servingAgainMs)} |`),
    '',
    `Light load: ${f.lightLoad?.ok ?? 0} appends acknowledged, ${f.lightLoad?.failed ?? 0} failed (sent while there was no leader). Leaders that stepped down by themselves: ${f.stepDowns?.length ?? 0}. The hypervisor stole ${fmtCpu(f.stealCpu)} cores on average during this phase.`,
    '',
    '## What each setup hides',
    '',
    '- **All on core 0** (`shard-core0`): the leader shares its core with both followers and etcd, so the ratio is what replication costs when the CPU budget is fixed: every batch is also received, written and fdatasynced by two more processes on the same core. It overstates the cost on machines with a core per replica.',
    '- **Spread** (`shard-spread`): this machine has 2 cores, so the followers and etcd run on core 1 with the load generator: the leader gets core 0 alone, but the followers take CPU from the client, and the client from them. Neither layout is "one machine per replica".',
    '- **Loopback**: the hop to the followers and back is loopback TCP (tens of µs), not a network: a deployment adds a network round trip to every batch\'s acknowledgement, and its followers\' disks are their own.',
    '- **One disk**: the three replicas (and etcd) write to the same virtio disk, so their fdatasyncs queue on the same device. An append is acknowledged once a majority (the leader and one follower) holds its batch, and a follower acknowledges a batch once written and synced, so a follower\'s fdatasync is on every append\'s path; here it waits behind the leader\'s and the other follower\'s on the one device.',
    `- **Failover** runs on loopback with etcd on the same machine and a lease TTL of ${f.leaseTtlMs} ms: most of it is waiting for the dead leader's lease to run out (the "2xx − lease left" column is the rest: etcd noticing the expiry, the election, the new leader's barrier). The killed node comes back after ${f.restartAfterMs} ms; when it reaches etcd before its old lease expires it removes the leader key naming it (\`replica.ts\` \`follow()\`), which can end a failover early: here it was listening again before the first 2xx in ${f.kills.filter((k) => k.restartListeningMs !== null && k.restartListeningMs < k.ms).length} of ${f.kills.length} kills, and the first 2xx came before the old lease would have run out in ${f.kills.filter((k) => k.leaseRemainingMs !== null && k.ms < k.leaseRemainingMs).length}.`,
    '',
  ]
  return lines.join('\n')
}

// ---------------------------------------------------------------------------------------------
// Main

const git = (...args) => spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' }).stdout?.trim() ?? ''

/** --at REF: other sessions edit src/ and rebuild dist/ here meanwhile, so a commit is
 * exported and built apart, and every server of the run starts from that build. */
function exportAndBuild(ref) {
  const commit = git('rev-parse', '--verify', `${ref}^{commit}`)
  if (!commit) throw new Error(`--at ${ref}: not a commit`)
  const dir = mkdtempSync(path.join(os.tmpdir(), `ringstream-${commit.slice(0, 7)}-`))
  tempDirs.add(dir)
  const archive = spawnSync('sh', ['-c', 'git archive "$0" | tar -x -C "$1"', commit, dir], { cwd: ROOT, stdio: 'inherit' })
  if (archive.status !== 0) throw new Error(`git archive ${commit} failed`)
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'))
  // The io_uring addon is built by node-gyp, not tsc: this checkout's build is used as it is.
  for (const native of ['build', 'npm']) if (existsSync(path.join(ROOT, native))) cpSync(path.join(ROOT, native), path.join(dir, native), { recursive: true })
  log(`replication: ${ref} = ${commit.slice(0, 7)}, exported to ${dir}; npm run build there`)
  const built = spawnSync('npm', ['run', 'build'], { cwd: dir, encoding: 'utf8' })
  if (built.status !== 0) throw new Error(`npm run build at ${commit.slice(0, 7)} failed: ${lastLines(built.stdout + built.stderr, 5).join(' | ')}`)
  return { dir, commit }
}

/** Which code ran: a commit built apart (--at), or this working tree's dist/ (maybe older than src/ with --no-build). */
function buildFacts(exported) {
  const distMs = Math.max(...['cli.js', 'server.js', 'cluster/replica.js'].map((f) => statSync(path.join(serverRoot, 'dist', f)).mtimeMs))
  const facts = { root: serverRoot, distBuiltAt: new Date(distMs).toISOString() }
  if (exported) return { ...facts, commit: exported.commit, at: atRef, workingTree: false }
  return { ...facts, commit: git('rev-parse', 'HEAD'), workingTree: true, uncommittedSrc: git('status', '--porcelain', 'src').split('\n').filter(Boolean), built: !argv['no-build'] }
}

/** --render FILE: replication.md again from a replication.json, after a change to the report. */
function render(file) {
  const result = JSON.parse(readFileSync(file, 'utf8'))
  Object.assign(opts, result.options)
  writeFileSync(path.join(path.dirname(file), 'replication.md'), markdown(result))
  log(`replication: rendered ${path.relative(ROOT, path.dirname(file)) || '.'}/replication.md from ${file}`)
}

async function main() {
  if (argv.render) return render(path.resolve(argv.render))
  const t0 = Date.now()
  // This script and the load generator share core 1; the lone node gets core 0 alone, as in bench/run.mjs.
  spawnSync('taskset', ['-pc', CLIENT_CORE, String(process.pid)], { stdio: 'ignore' })
  if (os.cpus().length < 2) throw new Error('needs at least 2 CPUs')
  let exported
  if (atRef !== undefined) {
    exported = exportAndBuild(atRef)
    serverRoot = exported.dir
    SERVERS[LONE].root = serverRoot // startServer runs <root>/bin/ringstream.js
    argv['no-build'] = true // build() then only compiles the load generator
  }
  build()
  const facts = buildFacts(exported)
  const machine = machineFacts()
  disk = path.basename(machine.filesystem.split(' ')[0] ?? '')
  log(`replication: ${machine.cpuModel} × ${machine.nproc}, ${machine.kernel}, Node ${machine.node}; data in ${opts.tmpBase} (${machine.filesystem})`)
  log(`replication: S = ${opts.writeStreams.join(', ')}; repeat ${opts.repeat}, warm-up ${opts.warmupS} s, window ${opts.durationS} s; ${kills} kills\n`)
  mkdirSync(opts.tmpBase, { recursive: true })
  for (let rep = 1; rep <= opts.repeat; rep++) {
    for (const S of opts.writeStreams) {
      await measure(() => steadyRun(() => runWrite(LONE, S, rep)))
      for (const id of Object.keys(LAYOUTS)) await measure(() => steadyRun(() => runShardWrite(id, S, rep)))
    }
  }
  const failover = await runFailover()
  const summary = summarize()
  const result = {
    benchmark: 'ringstream bench/replication.mjs',
    argv: process.argv.slice(2),
    machine,
    build: facts,
    options: { ...opts, kills, io: IO, replicas: REPLICAS, layouts: LAYOUTS, lone: LONE },
    elapsedSeconds: round((Date.now() - t0) / 1000, 1),
    writes: compare(summary),
    failover,
    runs,
  }
  mkdirSync(opts.outDir, { recursive: true })
  writeFileSync(path.join(opts.outDir, 'replication.json'), `${JSON.stringify(result, null, 2)}\n`)
  writeFileSync(path.join(opts.outDir, 'replication.md'), markdown(result))
  log('')
  for (const r of result.writes) log(`S=${String(r.streams).padEnd(5)} ${r.setup.padEnd(15)} ${fmtInt(r.appendsPerSecond).padStart(7)} appends/s  p50 ${fmtMs(r.p50Us)} p99 ${fmtMs(r.p99Us)} ms${r.overLone === null ? '' : `  ×${r.overLone} of lone, p99 ${signed(r.p99AddedMs)} ms`}  [${r.status}]`)
  log(`failover: median ${failover.medianMs} ms, p90 ${failover.p90Ms} ms, max ${failover.maxMs} ms over ${failover.kills.length} kills [${failover.status}]`)
  log(`\nreplication: done in ${result.elapsedSeconds} s; wrote ${path.relative(ROOT, opts.outDir)}/replication.json, replication.md`)
}

main().catch((error) => {
  console.error(`replication: ${error.stack ?? error.message}`)
  cleanup()
  process.exit(1)
})
