// http/sse.ts — Server-Sent Events sessions (PROTOCOL §5.7). A session is a read cursor:
// it sends whatever lies between its position and the tail, then waits. A congested client
// is paused (uWS reports backpressure) and resumes from its position when writable, so no
// per-client buffer grows. Connections are recycled after sseConnectionMs.

import { type ControlEvent, KEEPALIVE_FRAME, base64DataFrame, controlFrame, textDataFrame } from '../protocol/sse.js'
import { isSseTextContentType } from '../protocol/headers.js'
import { jsonArrayParts } from '../protocol/json.js'
import { formatOffset } from '../protocol/offset.js'
import type { Stream, Waiter } from '../streams/stream.js'
import type { ReadResult } from '../streams/engine.js'
import { addWaiter, removeWaiter } from '../streams/waiters.js'
import { type MaybePromise, andThen, isPromise } from '../util/maybe.js'
import type { Closable, Deferred, HttpContext, SharedFrame, Ticking } from './context.js'
import type { Exchange } from './exchange.js'
import type { ReadQuery } from '../protocol/read-query.js'

export function startSse(x: Exchange, ctx: HttpContext, stream: Stream, query: ReadQuery): MaybePromise<void> {
  if (query.offset.kind === 'now') return openSse(x, ctx, stream, query, stream.tail)
  const position = query.offset.kind === 'at' ? query.offset.position : 0
  return andThen(ctx.engine.checkReadPosition(stream, position), () => openSse(x, ctx, stream, query, position))
}

function openSse(x: Exchange, ctx: HttpContext, stream: Stream, query: ReadQuery, position: number): void {
  if (x.done) return
  const base64 = !isSseTextContentType(stream.config.contentType)
  const headers: Array<[string, string]> = [
    ['Content-Type', 'text/event-stream'],
    ['Cache-Control', 'no-cache'],
  ]
  if (base64) headers.push(['Stream-SSE-Data-Encoding', 'base64'])
  x.startStream(200, headers)
  const session = new SseSession(x, ctx, stream, position, query.cursor, base64)
  session.start()
}

class SseSession implements Waiter, Closable, Ticking, Deferred {
  readonly kind = 'sse'
  private paused = false
  private reading = false
  private ended = false
  private sentUpToDate = false
  private lastWriteMs: number
  private readonly startedMs: number

  constructor(
    private readonly x: Exchange,
    private readonly ctx: HttpContext,
    private readonly stream: Stream,
    private position: number,
    private readonly clientCursor: string | undefined,
    private readonly base64: boolean,
  ) {
    this.startedMs = ctx.now()
    this.lastWriteMs = this.startedMs
  }

  start(): void {
    this.ctx.live.add(this)
    this.stream.pins++
    this.x.onAbort(() => this.cleanup())
    this.x.onWritable(() => {
      if (this.paused) {
        this.paused = false
        this.pump()
      }
    })
    this.ctx.startTicking(this)
    this.pump()
  }

  wake(): void {
    if (!this.paused) this.ctx.defer(this)
  }

  runDeferred(): void {
    if (!this.paused) this.pump()
  }

  shutdown(): void {
    this.end()
  }

  private pump(): void {
    const { stream, ctx } = this
    while (!this.ended && !this.x.done && !this.reading) {
      if (ctx.engine.registry.goneReason(stream) !== undefined) return this.end()
      if (this.position < stream.tail) {
        const shared = ctx.sharedFrame(stream, this.position)
        if (shared !== undefined) {
          if (!this.deliver(shared)) return
          continue
        }
        const read = ctx.engine.read(stream, this.position, ctx.pieceBytes)
        if (isPromise(read)) {
          this.reading = true
          read.then(
            (ready) => {
              this.reading = false
              if (this.deliver(this.frameOf(ready))) this.pump()
            },
            () => this.end(),
          )
          return
        }
        if (!this.deliver(this.frameOf(read))) return
        continue
      }
      if (stream.closed) {
        // PROTOCOL §5.8: closed at the tail: streamClosed and upToDate (no cursor: no reconnect).
        this.write(controlFrame({ streamNextOffset: formatOffset(this.position), streamClosed: true, upToDate: true }))
        return this.end()
      }
      if (!this.sentUpToDate) {
        this.sentUpToDate = true
        this.write(controlFrame(this.control(true)))
      }
      addWaiter(stream, this)
      return
    }
  }

  /** Builds the data event for a read once, for every session at the same position. */
  private frameOf(read: ReadResult): SharedFrame {
    const parts = this.stream.config.json ? jsonArrayParts(read.parts) : read.parts
    const shared = { start: read.start, end: read.end, frame: this.base64 ? base64DataFrame(parts) : textDataFrame(parts) }
    this.ctx.shareFrame(this.stream, shared)
    return shared
  }

  /** Sends one data event and its control event; false when the client is congested. */
  private deliver(shared: SharedFrame): boolean {
    if (this.ended || this.x.done) return false
    const { stream } = this
    const upToDate = shared.end === stream.tail
    const closedAtEnd = upToDate && stream.closed
    this.position = shared.end
    const cursor = closedAtEnd ? '' : this.ctx.cursor(this.clientCursor)
    let combined = shared.withControl
    if (combined === undefined || combined.cursor !== cursor || combined.upToDate !== upToDate || combined.closed !== closedAtEnd) {
      const control: ControlEvent = closedAtEnd ? { streamNextOffset: formatOffset(shared.end), streamClosed: true } : this.control(upToDate, cursor)
      combined = { cursor, upToDate, closed: closedAtEnd, bytes: Buffer.concat([shared.frame, controlFrame(control)]) }
      shared.withControl = combined
    }
    this.sentUpToDate = upToDate
    const writable = this.write(combined.bytes)
    if (closedAtEnd) this.end()
    if (!writable) this.paused = true
    return writable
  }

  private control(upToDate: boolean, cursor = this.ctx.cursor(this.clientCursor)): ControlEvent {
    const event: ControlEvent = { streamNextOffset: formatOffset(this.position), streamCursor: cursor }
    if (upToDate) event.upToDate = true
    return event
  }

  private write(bytes: Buffer): boolean {
    if (this.x.done) return false
    this.lastWriteMs = this.ctx.now()
    return this.x.write(bytes)
  }

  tick(nowMs: number): void {
    if (nowMs - this.startedMs >= this.ctx.config.sseConnectionMs) return this.end()
    if (!this.paused && nowMs - this.lastWriteMs >= this.ctx.config.sseKeepAliveMs) this.write(KEEPALIVE_FRAME)
  }

  private end(): void {
    if (this.ended) return
    this.ended = true
    this.cleanup()
    this.x.endStream()
  }

  private cleanup(): void {
    this.ctx.stopTicking(this)
    removeWaiter(this.stream, this)
    // Pinned while live: the stream object must stay the one the registry serves.
    if (this.ctx.live.delete(this)) this.stream.pins--
  }
}
