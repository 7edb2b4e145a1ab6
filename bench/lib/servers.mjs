// bench/lib/servers.mjs — the servers under test: their ids and labels, starting and stopping them, sampling their memory.

import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { round } from './format.mjs'
import { HERE, ROOT, argv, opts, quick } from './options.mjs'
import { SERVER_CORE, lastLines, live, sleep, tempDirs } from './processes.mjs'

// ---------------------------------------------------------------------------------------------
// Servers

export const RS_CONFIGS = []
for (const durability of ['memory', 'buffered', 'fsync']) {
  for (const io of ['fs', 'uring']) RS_CONFIGS.push({ id: `rs-${durability}-${io}`, kind: 'ringstream', durability, io })
}
// --baseline DIR: the fsync configurations of another built checkout (e.g. the last commit
// before a change), run in the same interleaved passes as this one: ids base-fsync-fs/-uring.
export const BASELINE_CONFIGS = argv.baseline === undefined ? [] : ['fs', 'uring'].map((io) => ({ id: `base-fsync-${io}`, kind: 'ringstream', durability: 'fsync', io, root: path.resolve(argv.baseline) }))
// This build with GET /metrics and its counting off: what metrics cost, in the same run.
export const NO_METRICS_CONFIGS = ['fs', 'uring'].map((io) => ({ id: `rs-fsync-${io}-nometrics`, kind: 'ringstream', durability: 'fsync', io, args: ['--metrics', 'off'] }))
// This build on the node:http backend (--http node): the fallback where uWebSockets.js does
// not load, measured beside the uWS path.
export const NODE_HTTP_CONFIGS = [
  { id: 'rs-fsync-uring-node', kind: 'ringstream', durability: 'fsync', io: 'uring', args: ['--http', 'node'] },
  { id: 'rs-memory-fs-node', kind: 'ringstream', durability: 'memory', io: 'fs', args: ['--http', 'node'] },
]
export const SERVERS = Object.fromEntries(
  [
    ...RS_CONFIGS,
    ...BASELINE_CONFIGS,
    ...NO_METRICS_CONFIGS,
    ...NODE_HTTP_CONFIGS,
    { id: 'ref-memory', kind: 'reference', file: false },
    { id: 'ref-file', kind: 'reference', file: true },
    { id: 'null', kind: 'null' },
    { id: 'broadcast', kind: 'broadcast' },
  ].map((s) => [s.id, s]),
)
export const LABEL = {
  null: 'null uWS handler',
  broadcast: 'empty uWS broadcaster',
  'ref-memory': 'reference (memory)',
  'ref-file': 'reference (file)',
}
export const label = (id) => LABEL[id] ?? `${SERVERS[id].root === undefined ? 'ringstream' : 'baseline'} ${SERVERS[id].durability}+${SERVERS[id].io}${SERVERS[id].args?.includes('off') ? ' (metrics off)' : ''}${SERVERS[id].args?.includes('node') ? ' on node:http' : ''}`

export const DEFAULT_SERVERS = {
  write: [...RS_CONFIGS.map((c) => c.id), 'rs-fsync-uring-node', 'ref-memory', 'ref-file'],
  control: ['null'],
  batch: ['null', 'rs-memory-fs', 'rs-fsync-fs', 'rs-fsync-uring', 'ref-memory'],
  fanout: quick ? ['broadcast', 'rs-fsync-fs', 'rs-fsync-uring', 'rs-memory-fs', 'rs-fsync-uring-node', 'ref-memory'] : ['broadcast', 'rs-fsync-fs', 'rs-fsync-uring', 'rs-memory-fs', 'rs-fsync-uring-node', 'ref-memory', 'ref-file'],
  catchup: ['rs-fsync-fs', 'rs-fsync-uring', 'rs-memory-fs', 'rs-fsync-uring-node', 'ref-memory'],
}

export function selectServers(scenario) {
  const defaults = DEFAULT_SERVERS[scenario]
  if (!argv.servers) return defaults
  const patterns = argv.servers.split(',').map((p) => p.trim()).filter(Boolean)
  const all = Object.keys(SERVERS)
  const picked = all.filter((id) =>
    patterns.some((p) => (p.includes('*') ? new RegExp(`^${p.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`).test(id) : p === id)),
  )
  for (const p of patterns) if (!p.includes('*') && !all.includes(p)) throw new Error(`unknown server "${p}" (known: ${all.join(', ')})`)
  if (scenario === 'control') return picked.filter((id) => id === 'null')
  if (scenario === 'write') return picked.filter((id) => id !== 'null')
  return picked.filter((id) => id !== 'null')
}

// ---------------------------------------------------------------------------------------------
// Starting and stopping servers

export const unavailable = new Map() // server id -> reason (decided on the first attempt)

export class Unavailable extends Error {}

export async function startServer(id) {
  const def = SERVERS[id]
  if (unavailable.has(id)) throw new Unavailable(unavailable.get(id))
  mkdirSync(opts.tmpBase, { recursive: true })
  const dataDir = mkdtempSync(path.join(opts.tmpBase, `ringstream-bench-${id}-`))
  tempDirs.add(dataDir)
  let args
  if (def.kind === 'ringstream') {
    args = [path.join(def.root ?? ROOT, 'bin', 'ringstream.js'), '--port', '0', '--data-dir', dataDir, '--durability', def.durability, '--io', def.io, ...(def.args ?? [])]
  } else if (def.kind === 'reference') {
    args = [path.join(HERE, 'ref-server.mjs'), '--port', '0']
    if (def.file) args.push('--data-dir', dataDir)
  } else {
    args = [path.join(HERE, def.kind === 'broadcast' ? 'broadcast-server.mjs' : 'null-server.mjs'), '--port', '0']
  }
  const child = spawn('taskset', ['-c', SERVER_CORE, process.execPath, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_ENV: 'production' },
  })
  live.add(child)
  let output = ''
  const onData = (d) => {
    output += d.toString()
    if (output.length > 200_000) output = output.slice(-100_000)
  }
  child.stdout.on('data', onData)
  child.stderr.on('data', onData)
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  const started = Date.now()
  let listenLine
  for (;;) {
    listenLine = output.split('\n').find((l) => /listening on http:\/\//.test(l))
    if (listenLine) break
    const done = await Promise.race([exited, sleep(25).then(() => null)])
    if (done) {
      live.delete(child)
      const reason = `exited (${done.code ?? done.signal}) before listening: ${lastLines(output, 3).join(' | ')}`
      if (def.kind === 'ringstream' && def.io === 'uring') {
        unavailable.set(id, reason)
        throw new Unavailable(reason)
      }
      throw new Error(`${id} ${reason}`)
    }
    if (Date.now() - started > 60_000) {
      stopServer({ child, dataDir })
      throw new Error(`${id} did not print its listening line within 60 s: ${lastLines(output).join(' | ')}`)
    }
  }
  const port = Number(/listening on http:\/\/[^:/]+:(\d+)/.exec(listenLine)[1])
  const server = { id, child, pid: child.pid, port, dataDir, listenLine: listenLine.trim(), output: () => output, exited }
  if (def.kind === 'ringstream') {
    const io = /\bio=(\S+)/.exec(listenLine)?.[1] ?? 'unknown'
    server.ioActual = io
    // The memory class does no file I/O at all (io=none): --io makes no difference there.
    if (io === 'none') server.ioNote = 'memory storage does no file I/O (io=none), so --io has no effect'
    if (def.io === 'uring' && !/uring/.test(io) && io !== 'none') {
      const reason = `started with io=${io} instead of io_uring: "${listenLine.trim()}"`
      unavailable.set(id, reason)
      await stopServer(server)
      throw new Unavailable(reason)
    }
  }
  return server
}

export async function stopServer(server) {
  if (!server) return
  try {
    process.kill(server.child.pid, 'SIGKILL')
  } catch {}
  await Promise.race([server.exited, sleep(3000)])
  live.delete(server.child)
  // Data directories are removed at exit, not here: ext4 makes every new inode skip the ones
  // deleted in the last few seconds, so deleting 10,000 data files right before the next
  // server creates 10,000 would charge it ~0.4 ms per stream for our own clean-up.
}

// ---------------------------------------------------------------------------------------------
// Memory sampling

export function readRssKiB(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(status)
    return m ? Number(m[1]) : undefined
  } catch {
    return undefined
  }
}

export function startRssSampler(pid) {
  const samples = []
  const take = () => {
    const v = readRssKiB(pid)
    if (v !== undefined) samples.push(v)
  }
  take()
  const timer = setInterval(take, 100)
  return {
    stop() {
      clearInterval(timer)
      take()
      const sorted = [...samples].sort((a, b) => a - b)
      return {
        samples: samples.length,
        /** Right after the server reported ready, before any load: the idle floor. */
        startMiB: samples.length ? round(samples[0] / 1024, 1) : null,
        p50MiB: sorted.length ? round(sorted[Math.floor((sorted.length - 1) / 2)] / 1024, 1) : null,
        peakMiB: sorted.length ? round(sorted[sorted.length - 1] / 1024, 1) : null,
        lastMiB: samples.length ? round(samples[samples.length - 1] / 1024, 1) : null,
      }
    },
  }
}
