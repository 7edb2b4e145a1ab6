// bench/lib/client-bench.mjs — what the official-client benchmarks (bench/state-load.mjs,
// bench/long-poll-lag.mjs) share: the servers they compare (ringstream, ringstream with the
// old 1 MiB responses, the reference in memory), a process pinned to a core, one server at a
// time on core 0, and a fetch that counts requests and response sizes for the client side.

import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const HERE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const ROOT = path.resolve(HERE, '..')

export const CLIENT_BENCH_SERVERS = [
  { id: 'ringstream', args: (dir) => [path.join(ROOT, 'bin', 'ringstream.js'), '--port', '0', '--data-dir', dir] },
  { id: 'ringstream-1mib', args: (dir) => [path.join(ROOT, 'bin', 'ringstream.js'), '--port', '0', '--data-dir', dir, '--read-bytes-max', '1048576'] },
  { id: 'reference', args: () => [path.join(HERE, 'ref-server.mjs'), '--port', '0'] },
]

/** Runs `node ...args` on `core`; `onLine` gets each line of its standard output. */
export function runOnCore(core, args, onLine) {
  const child = spawn('taskset', ['-c', core, process.execPath, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d) => {
    out += d
    for (let end = out.indexOf('\n'); end >= 0; end = out.indexOf('\n')) {
      onLine?.(out.slice(0, end))
      out = out.slice(end + 1)
    }
  })
  child.stderr.on('data', () => {})
  return child
}

/** Starts `server` alone on core 0 with a fresh data directory, runs `action(baseUrl)`, stops it. */
export async function withServer(server, action) {
  const dir = mkdtempSync(path.join(tmpdir(), `client-bench-${server.id}-`))
  let resolveUrl
  const url = new Promise((resolve) => (resolveUrl = resolve))
  const child = runOnCore('0', server.args(dir), (line) => {
    const match = /listening on (http:\/\/\S+?)(\/v1\/stream\/)?(\s|$)/.exec(line)
    if (match) resolveUrl(match[1])
  })
  try {
    const base = await Promise.race([url, new Promise((_, reject) => setTimeout(() => reject(new Error(`${server.id} did not start`)), 30_000))])
    return await action(base)
  } finally {
    child.kill('SIGKILL')
    await new Promise((resolve) => child.once('exit', resolve))
    rmSync(dir, { recursive: true, force: true })
  }
}

/** A fetch that counts requests and remembers the largest Content-Length answered. */
export function countingFetch() {
  const counts = { requests: 0, largestResponse: 0 }
  const fetchCounting = async (input, init) => {
    counts.requests++
    const res = await fetch(input, init)
    const length = Number(res.headers.get('content-length') ?? NaN)
    if (Number.isFinite(length) && length > counts.largestResponse) counts.largestResponse = length
    return res
  }
  return { counts, fetch: fetchCounting }
}
