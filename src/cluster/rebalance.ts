// cluster/rebalance.ts — `ringstream rebalance`: adds a node to the proxy's hash ring (or
// takes one out) and moves every stream whose path the ring now gives another node, online
// (docs/scaling.md). Steps: every node enters moving mode (a path it neither holds nor
// forwards is looked for on the others first: cluster/moves.ts); HAProxy's runtime API
// makes the server ready (or puts it in maintenance); every node's streams are listed and
// each one's owner under the new ring is asked of the proxy itself (a probe the owner
// answers); misplaced streams move to their owner, a few at a time (a fork moves as the
// bytes it reads; a stream forks read through moves once they have gone, else it stays and
// its owner forwards to it); further passes take streams made meanwhile and those sources;
// moving mode ends. Progress on stderr: a bar on a terminal, a line per 100 streams
// otherwise.

import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { runtimeApi } from './proxy-admin.js'

/** Streams moved at once. */
const MOVES_AT_ONCE = 4
/** Passes over every node's streams: the second takes streams made during the first; more
 * follow while a pass moved streams and left some where they are (a source moves once the
 * forks reading through it have moved: a fork of a fork needs a third pass, and so on). */
const PASSES_MIN = 2
const PASSES_MAX = 6

/** A server of the proxy's backend: a node, or a shard with its replicas' URLs. */
interface Node {
  readonly name: string
  readonly urls: readonly string[]
}

interface Listed {
  readonly p: string
  readonly t: number
  readonly movable: boolean
}

interface Tally {
  streams: number
  checked: number
  moved: number
  /** Streams deleted, expired or forked since they were listed: left alone. */
  skipped: number
  /** Streams forks on their node still read through, left where they are (by path: the
   * node holding them), in the last pass. */
  readonly kept: Map<string, string>
  bytes: number
  pausesMs: number[]
  /** Every stream moved: where from and to, its bytes and its pause (for --report). */
  readonly moves: Array<{ path: string; from: string; to: string; bytes: number; pauseMs: number }>
}

const USAGE = `usage: ringstream rebalance --proxy <url> --proxy-admin <socket|host:port> --nodes <name=url,…> (--add <name> | --remove <name>) [--backend nodes]
  --proxy        the HAProxy every stream is reached through
  --proxy-admin  its runtime API (stats socket … level admin)
  --nodes        every node, as named on the backend's server lines, with its URL (the added or removed one too);
                 a replicated shard with every replica's URL: shard-1=http://a:1|http://b:1
  --add NAME     puts server NAME in the ring (state ready) and moves to it the streams it now owns
  --remove NAME  takes server NAME out of the ring (state maint) and moves its streams to their new owners
  --report FILE  writes every stream moved (from, to, bytes, pause) as JSON`

export async function rebalance(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { report: { type: 'string' }, proxy: { type: 'string' }, 'proxy-admin': { type: 'string' }, nodes: { type: 'string' }, add: { type: 'string' }, remove: { type: 'string' }, backend: { type: 'string', default: 'nodes' } },
  })
  const proxy = values.proxy?.replace(/\/+$/, '')
  const admin = values['proxy-admin']
  const target = values.add ?? values.remove
  if (proxy === undefined || admin === undefined || values.nodes === undefined || target === undefined || (values.add !== undefined && values.remove !== undefined)) throw new Error(USAGE)
  const nodes: Node[] = values.nodes.split(',').map((entry) => {
    const [name, urls] = entry.split('=')
    const list = urls?.split('|') ?? []
    if (name === undefined || list.length === 0 || !list.every((url) => /^https?:\/\/[^/]+\/?$/.test(url))) throw new Error(`--nodes: "${entry}" is not name=http(s)://host:port[|http(s)://host:port…]`)
    return { name, urls: list.map((url) => url.replace(/\/+$/, '')) }
  })
  if (!nodes.some((node) => node.name === target)) throw new Error(`--nodes does not name ${target}`)
  const started = performance.now()
  await Promise.all(nodes.map((node) => setMoving(node, true)))
  const answer = await runtimeApi(admin, [`set server ${values.backend}/${target} state ${values.add !== undefined ? 'ready' : 'maint'}`])
  if (answer.trim() !== '') throw new Error(`HAProxy refused to change ${values.backend}/${target}: ${answer.trim()} (every node stays in moving mode: run again)`)
  const tally: Tally = { streams: 0, checked: 0, moved: 0, skipped: 0, kept: new Map(), bytes: 0, pausesMs: [], moves: [] }
  const progress = new Progress(tally)
  for (let pass = 0; pass < PASSES_MAX; pass++) {
    tally.kept.clear()
    const movedBefore = tally.moved
    for (const node of nodes) await placeStreams(proxy, node, tally, progress)
    if (pass + 1 >= PASSES_MIN && (tally.moved === movedBefore || tally.kept.size === 0)) break
  }
  progress.done()
  await Promise.all(nodes.map((node) => setMoving(node, false)))
  const stranded = [...tally.kept].filter(([, holder]) => holder === target).map(([path]) => path)
  if (values.report !== undefined) writeFileSync(values.report, `${JSON.stringify({ moves: tally.moves, kept: [...tally.kept], skipped: tally.skipped }, null, 1)}\n`)
  const pauses = [...tally.pausesMs].sort((a, b) => a - b)
  const median = pauses.length === 0 ? 0 : pauses[Math.floor(pauses.length / 2)]!
  const max = pauses.length === 0 ? 0 : pauses[pauses.length - 1]!
  console.log(
    `rebalance: ${values.add !== undefined ? 'added' : 'removed'} ${target}: ${tally.moved} streams moved (${formatBytes(tally.bytes)}), ${tally.kept.size} streams kept where they are (forks there read through them; forwarded), ${tally.skipped} gone or forked meanwhile, ` +
      `pause per moved stream median ${median.toFixed(1)} ms / max ${max.toFixed(1)} ms, ${((performance.now() - started) / 1000).toFixed(1)} s in all`,
  )
  if (values.remove !== undefined && stranded.length > 0) {
    // A stream forks read through stays with them: its node must keep running (out of the ring, forwarded to).
    console.error(`rebalance: ${stranded.length} streams forks read through stay on ${target}, which must keep running: ${stranded.slice(0, 10).join(', ')}${stranded.length > 10 ? ', …' : ''}`)
    process.exitCode = 1
  }
}

/** `path` on `node`: at its first replica that can be reached (a follower passes it to its
 * leader). */
async function reach(node: Node, path: string, init: RequestInit = {}): Promise<Response> {
  let last: unknown
  for (const url of node.urls) {
    try {
      return await fetch(`${url}${path}`, init)
    } catch (error) {
      last = error
    }
  }
  throw new Error(`${node.name} (${node.urls.join(', ')}) cannot be reached: ${(last as Error).message}`)
}

async function setMoving(node: Node, on: boolean): Promise<void> {
  const res = await reach(node, '/v1/stream/__ds/cluster/moving', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ on }) })
  if (res.status !== 204) throw new Error(`${node.name} refused moving mode: ${res.status} ${await res.text()}`)
}

/** Moves `node`'s misplaced streams to their owners under the current ring. */
async function placeStreams(proxy: string, node: Node, tally: Tally, progress: Progress): Promise<void> {
  const listed = await listStreams(node)
  tally.streams += listed.length
  progress.show()
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < listed.length) {
      const stream = listed[next++]!
      const owner = await ownerOf(proxy, stream.p)
      if (!node.urls.includes(owner)) {
        if (stream.movable) {
          const moved = await post(node, { path: stream.p, to: owner })
          if (moved === undefined) {
            tally.skipped++
            tally.checked++
            continue
          }
          tally.moved++
          tally.bytes += moved.bytes
          tally.pausesMs.push(moved.pauseMs)
          tally.moves.push({ path: stream.p, from: node.name, to: owner, bytes: moved.bytes, pauseMs: moved.pauseMs })
        } else {
          // Forks here read through it: it stays, and its owner looks it up once (moving mode) and forwards from then on.
          const res = await fetch(`${owner}/v1/stream/${encodePath(stream.p)}`, { method: 'HEAD' })
          if (!res.ok) throw new Error(`${owner} cannot reach ${stream.p} on ${node.name}: ${res.status}`)
          tally.kept.set(stream.p, node.name)
        }
      }
      tally.checked++
      progress.show()
    }
  }
  await Promise.all(Array.from({ length: MOVES_AT_ONCE }, worker))
}

async function listStreams(node: Node): Promise<Listed[]> {
  const res = await reach(node, '/v1/stream/__ds/cluster/streams')
  if (!res.ok) throw new Error(`${node.name} did not list its streams: ${res.status} ${await res.text()}`)
  return (await res.text())
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as Listed)
}

async function ownerOf(proxy: string, path: string): Promise<string> {
  const res = await fetch(`${proxy}/v1/stream/${encodePath(path)}?ringstream-probe=1`, { method: 'HEAD' })
  const owner = res.headers.get('ringstream-node')
  if (res.status !== 204 || owner === null) throw new Error(`the proxy did not name ${path}'s owner: ${res.status}`)
  return owner
}

/** A move's cost; undefined when the stream went (404) or gained a fork (409) since it was listed. */
async function post(node: Node, body: unknown): Promise<{ bytes: number; pauseMs: number } | undefined> {
  const res = await reach(node, '/v1/stream/__ds/cluster/move', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const text = await res.text()
  if (res.status === 404 || res.status === 409) return undefined
  if (res.status !== 200) throw new Error(`${node.name} move ${JSON.stringify(body)}: ${res.status} ${text} (every node stays in moving mode: run again)`)
  return JSON.parse(text) as { bytes: number; pauseMs: number }
}

function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/')
}

function formatBytes(bytes: number): string {
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1024 / 1024).toFixed(1)} MiB`
}

/** A bar on a terminal (redrawn at most every 100 ms), a line per 100 streams otherwise. */
class Progress {
  private shownAt = 0
  private readonly tty = process.stderr.isTTY === true

  constructor(private readonly tally: Tally) {}

  show(): void {
    const { checked, streams, moved, bytes } = this.tally
    if (this.tty) {
      const now = performance.now()
      if (now - this.shownAt < 100 && checked < streams) return
      this.shownAt = now
      const width = 30
      const filled = streams === 0 ? width : Math.round((checked / streams) * width)
      process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${checked}/${streams} streams checked, ${moved} moved, ${formatBytes(bytes)}   `)
    } else if (checked > 0 && checked % 100 === 0) {
      process.stderr.write(`rebalance: ${checked}/${streams} streams checked, ${moved} moved, ${formatBytes(bytes)}\n`)
    }
  }

  done(): void {
    if (this.tty) process.stderr.write('\n')
  }
}
