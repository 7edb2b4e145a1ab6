// cluster/stream-watch.ts — the serving side of cluster-wide subscriptions: another node
// whose subscription matches streams held here follows them with POST
// /v1/stream/__ds/watch {pattern?, streams?}. The answer is a list, then a watch (as in
// Kubernetes): one NDJSON line per matching stream with its id and tail, `{"synced":true}`,
// then a line whenever one of them is created, grows or goes. Nothing here is stored: a
// follower that loses the connection asks again and compares the tails with its durable
// cursors, so a change it missed is a tail it has not acked (level-triggered, never lost).
// Changes are coalesced per event-loop turn (one line per stream per turn); a follower too
// slow to read them is cut off and lists again.

import type { Exchange } from '../http/exchange.js'
import type { WatchFeed } from '../http/context.js'
import { badRequest } from '../protocol/errors.js'
import type { Engine, StreamObserver } from '../streams/engine.js'
import type { Stream } from '../streams/stream.js'
import { type Glob, compileGlob, patternProblem } from '../subscriptions/glob.js'
import { streamListOf } from '../subscriptions/model.js'

/** A follower's request: a subscription's pattern and explicit streams. */
const WATCH_BODY_BYTES_MAX = 16 * 1024 * 1024
/** Explicit streams one watch may name (a subscription's link limit is lower). */
const WATCH_STREAMS_MAX = 1_000_000
/** Bytes a watch may hold unsent before it is cut off (the follower lists again). */
const WATCH_BUFFER_BYTES_MAX = 4 * 1024 * 1024
/** A blank line this often keeps an idle watch's connection (and its proxies) open. */
const WATCH_KEEPALIVE_MS = 10_000
/** Streams listed per write while a watch starts. */
const LIST_LINES_PER_WRITE = 1024

const NDJSON: Array<[string, string]> = [
  ['Content-Type', 'application/x-ndjson'],
  ['Cache-Control', 'no-store'],
]

class Watch {
  /** Changes of this turn: path → line. */
  private dirty = new Map<string, string>()
  private unsent = 0
  private closed = false
  private readonly keepalive: NodeJS.Timeout

  constructor(
    private readonly x: Exchange,
    readonly glob: Glob | undefined,
    readonly streams: ReadonlySet<string>,
    private readonly onClose: (watch: Watch) => void,
  ) {
    this.keepalive = setInterval(() => this.send('\n'), WATCH_KEEPALIVE_MS)
    this.keepalive.unref()
    x.onAbort(() => this.close(false))
    // Once: the connection took what it held (an approximation of "empty" good enough for a cut-off).
    x.onWritable(() => (this.unsent = 0))
  }

  matches(path: string): boolean {
    return this.streams.has(path) || this.glob?.matches(path) === true
  }

  changed(path: string, line: string, flush: (watch: Watch) => void): void {
    if (this.dirty.size === 0) flush(this)
    this.dirty.set(path, line)
  }

  flush(): void {
    if (this.closed || this.dirty.size === 0) return
    let text = ''
    for (const line of this.dirty.values()) text += line
    this.dirty.clear()
    this.send(text)
  }

  /** `listing`: part of the list, which is sent whole however slowly it is read (bounded
   * by the streams that match); only changes piling up behind it cut a watch off. */
  send(text: string, listing = false): void {
    if (this.closed) return
    if (!listing && this.unsent > WATCH_BUFFER_BYTES_MAX) return this.close(true)
    const bytes = Buffer.from(text)
    if (!this.x.write(bytes) && !listing) this.unsent += bytes.length
  }

  close(end: boolean): void {
    if (this.closed) return
    this.closed = true
    clearInterval(this.keepalive)
    this.onClose(this)
    if (end && !this.x.done) this.x.closeStream()
  }
}

export class StreamWatchHub implements StreamObserver, WatchFeed {
  private readonly watches = new Set<Watch>()
  private readonly flushing = new Set<Watch>()
  private flushScheduled = false

  constructor(
    private readonly engine: Engine,
    /** The observer before this one (the subscription manager): told everything first. */
    private readonly next: StreamObserver | undefined,
  ) {}

  get size(): number {
    return this.watches.size
  }

  changed(stream: Stream, replayed: boolean): void {
    this.next?.changed(stream, replayed)
    if (this.watches.size === 0 || replayed) return
    this.report(stream.path, () => tailLine(stream))
  }

  removed(stream: Stream): void {
    this.next?.removed(stream)
    if (this.watches.size === 0) return
    this.report(stream.path, () => `${JSON.stringify({ p: stream.path, i: stream.id, gone: true })}\n`)
  }

  async serve(x: Exchange): Promise<void> {
    const body = await x.readBody(WATCH_BODY_BYTES_MAX)
    let request: unknown
    try {
      request = JSON.parse(body.toString('utf8'))
    } catch {
      throw badRequest('a watch takes a JSON object {pattern?, streams?}')
    }
    const { glob, streams } = parseWatch(request)
    if (x.done) return
    x.startStream(200, NDJSON)
    const watch = new Watch(x, glob, streams, (closed) => {
      this.watches.delete(closed)
      this.flushing.delete(closed)
    })
    // From here on changes are queued behind the list: a stream changing while it is
    // listed is reported again after it, never lost in between.
    this.watches.add(watch)
    let lines = ''
    let count = 0
    const listed = (stream: Stream): boolean => {
      lines += tailLine(stream)
      if (++count % LIST_LINES_PER_WRITE === 0) {
        watch.send(lines, true)
        lines = ''
      }
      return true
    }
    for (const path of streams) {
      const stream = this.engine.registry.find(path)
      if (stream !== undefined && !stream.softDeleted && stream.deletion === undefined) listed(stream)
    }
    if (glob !== undefined) this.engine.registry.forEachLive((path) => glob.matches(path) && !streams.has(path), listed)
    watch.send(`${lines}{"synced":true}\n`, true)
  }

  private report(path: string, line: () => string): void {
    let text: string | undefined
    for (const watch of this.watches) {
      if (!watch.matches(path)) continue
      text ??= line()
      watch.changed(path, text, (dirty) => this.flushing.add(dirty))
    }
    if (this.flushing.size === 0 || this.flushScheduled) return
    this.flushScheduled = true
    setImmediate(() => {
      this.flushScheduled = false
      for (const watch of this.flushing) watch.flush()
      this.flushing.clear()
    })
  }
}

function tailLine(stream: Stream): string {
  return `${JSON.stringify({ p: stream.path, i: stream.id, t: stream.tail })}\n`
}

function parseWatch(request: unknown): { glob: Glob | undefined; streams: ReadonlySet<string> } {
  if (typeof request !== 'object' || request === null) throw badRequest('a watch takes a JSON object {pattern?, streams?}')
  const { pattern, streams } = request as { pattern?: unknown; streams?: unknown }
  let glob: Glob | undefined
  if (pattern !== undefined && pattern !== null) {
    if (typeof pattern !== 'string') throw badRequest('pattern must be a string')
    const problem = patternProblem(pattern)
    if (problem !== undefined) throw badRequest(problem)
    glob = compileGlob(pattern)
  }
  const list = streams === undefined || streams === null ? [] : streamListOf(streams, 'streams', 64 * 1024, WATCH_STREAMS_MAX)
  if (glob === undefined && list.length === 0) throw badRequest('a watch needs a pattern or streams')
  return { glob, streams: new Set(list) }
}
