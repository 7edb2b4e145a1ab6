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
import { isPromise } from '../util/maybe.js'
import type { Closable, HttpContext } from './context.js'
import type { Exchange } from './exchange.js'
import type { ReadQuery } from './read.js'

export function startSse(x: Exchange, ctx: HttpContext, stream: Stream, query: ReadQuery): void {
  let position = stream.tail
  if (query.offset.kind !== 'now') {
    position = query.offset.kind === 'at' ? query.offset.position : 0
    ctx.engine.checkReadPosition(stream, position)
  }
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

class SseSession implements Waiter, Closable {
  private paused = false
  private reading = false
  private ended = false
  private sentUpToDate = false
  private lastWriteMs: number
  private readonly startedMs: number
  private ticker: NodeJS.Timeout | undefined

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
    this.x.onAbort(() => this.cleanup())
    this.x.res.onWritable(() => {
      if (this.paused) {
        this.paused = false
        this.pump()
      }
      return true
    })
    this.ticker = setInterval(() => this.tick(), Math.min(1000, this.ctx.config.sseKeepAliveMs))
    this.pump()
  }

  wake(): void {
    if (!this.paused) this.pump()
  }

  shutdown(): void {
    this.end()
  }

  private pump(): void {
    const { stream, ctx } = this
    while (!this.ended && !this.x.done && !this.reading) {
      if (stream.softDeleted || ctx.engine.registry.find(stream.path) !== stream) return this.end()
      if (this.position < stream.tail) {
        const read = ctx.engine.read(stream, this.position)
        if (isPromise(read)) {
          this.reading = true
          read.then(
            (ready) => {
              this.reading = false
              if (this.deliver(ready)) this.pump()
            },
            () => this.end(),
          )
          return
        }
        if (!this.deliver(read)) return
        continue
      }
      if (stream.closed) {
        this.write([controlFrame({ streamNextOffset: formatOffset(this.position), streamClosed: true })])
        return this.end()
      }
      if (!this.sentUpToDate) {
        this.sentUpToDate = true
        this.write([controlFrame(this.control(true))])
      }
      addWaiter(stream, this)
      return
    }
  }

  /** Sends one data event and its control event; false when the client is congested. */
  private deliver(read: ReadResult): boolean {
    if (this.ended || this.x.done) return false
    const parts = this.stream.config.json ? jsonArrayParts(read.parts) : read.parts
    const data = this.base64 ? base64DataFrame(parts) : textDataFrame(parts)
    this.position = read.end
    const control: ControlEvent = read.closedAtEnd
      ? { streamNextOffset: formatOffset(read.end), streamClosed: true }
      : this.control(read.upToDate)
    this.sentUpToDate = read.upToDate
    const writable = this.write([data, controlFrame(control)])
    if (read.closedAtEnd) this.end()
    if (!writable) this.paused = true
    return writable
  }

  private control(upToDate: boolean): ControlEvent {
    const event: ControlEvent = { streamNextOffset: formatOffset(this.position), streamCursor: this.ctx.cursor(this.clientCursor) }
    if (upToDate) event.upToDate = true
    return event
  }

  private write(frames: Buffer[]): boolean {
    if (this.x.done) return false
    this.lastWriteMs = this.ctx.now()
    let writable = true
    this.x.res.cork(() => {
      for (const frame of frames) writable = this.x.res.write(frame) && writable
    })
    return writable
  }

  private tick(): void {
    const nowMs = this.ctx.now()
    if (nowMs - this.startedMs >= this.ctx.config.sseConnectionMs) return this.end()
    if (!this.paused && nowMs - this.lastWriteMs >= this.ctx.config.sseKeepAliveMs) this.write([KEEPALIVE_FRAME])
  }

  private end(): void {
    if (this.ended) return
    this.ended = true
    this.cleanup()
    this.x.endStream()
  }

  private cleanup(): void {
    if (this.ticker !== undefined) clearInterval(this.ticker)
    this.ticker = undefined
    removeWaiter(this.stream, this)
    this.ctx.live.delete(this)
  }
}
