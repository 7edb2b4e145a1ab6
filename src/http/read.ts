// http/read.ts — HEAD, catch-up GET (ETag/304, chunking, gzip) and long-poll GET.
// SSE lives in http/sse.ts; both parse the query with protocol/read-query.ts.

import { promisify } from 'node:util'
import { gzip } from 'node:zlib'
import { jsonArrayParts } from '../protocol/json.js'
import { formatOffset } from '../protocol/offset.js'
import { parseReadQuery } from '../protocol/read-query.js'
import type { ReadExtent } from '../streams/engine.js'
import { type MaybePromise, andThen } from '../util/maybe.js'
import type { Stream, Waiter } from '../streams/stream.js'
import { addWaiter, removeWaiter } from '../streams/waiters.js'
import { type Closable, type HttpContext, NODE_HEADER } from './context.js'
import type { Exchange } from './exchange.js'
import { sendPieces } from './catch-up.js'
import { startSse } from './sse.js'

const gzipAsync = promisify(gzip)
const CACHE_IMMUTABLE = 'public, max-age=60, stale-while-revalidate=300'
/** With authentication on, a response is one token's to see: no shared cache may keep it
 * (PROTOCOL §10.1, §12.7). */
const CACHE_IMMUTABLE_PRIVATE = 'private, max-age=60, stale-while-revalidate=300'
/** Tail reads of open streams change as data arrives: revalidate (ETag) instead of caching. */
const CACHE_TAIL = 'no-cache'
const COMPRESSIBLE = /^(text\/|application\/(json|ndjson|x-ndjson|xml|javascript)|.*\+(json|xml)$)/

export function handleHead(x: Exchange, ctx: HttpContext, path: string): void {
  const stream = ctx.engine.peek(path)
  const headers: Array<[string, string]> = [
    ['Content-Type', stream.config.contentType.value],
    ['Stream-Next-Offset', formatOffset(stream.tail)],
    ['Cache-Control', 'no-store'],
    ['Stream-Durability', stream.config.durability],
  ]
  const { ttlSeconds, expiresAtMs } = stream.config
  if (ttlSeconds !== undefined) headers.push(['Stream-TTL', String(ttlSeconds)])
  if (expiresAtMs !== undefined) headers.push(['Stream-Expires-At', new Date(expiresAtMs).toISOString()])
  if (stream.closed) headers.push(['Stream-Closed', 'true'])
  // Which node holds the stream: how a node finds a fork source's node (cluster/forwarding.ts).
  if (ctx.cluster !== undefined) headers.push([NODE_HEADER, ctx.cluster.nodeUrl])
  x.send(200, headers)
}

export function handleGet(x: Exchange, ctx: HttpContext, path: string): MaybePromise<void> {
  const query = parseReadQuery(x.query)
  const stream = ctx.engine.openForRead(path)
  if (query.live === 'sse') return startSse(x, ctx, stream, query)
  if (query.offset.kind === 'now') {
    if (query.live === 'long-poll') return longPoll(x, ctx, stream, stream.tail, query.cursor)
    return sendNow(x, ctx, stream)
  }
  const position = query.offset.kind === 'at' ? query.offset.position : 0
  return andThen(ctx.engine.checkReadPosition(stream, position), () => {
    if (query.live === 'long-poll') return longPoll(x, ctx, stream, position, query.cursor)
    return sendFrom(x, ctx, stream, position, query.cursor, true)
  })
}

/** Sends what there is from `position` (catch-up, or a long-poll with data): up to the
 * tail, or readBytesMax; a response of more than one piece is streamed (catch-up.ts). */
function sendFrom(x: Exchange, ctx: HttpContext, stream: Stream, position: number, clientCursor: string | undefined, conditional: boolean): MaybePromise<void> {
  return andThen(ctx.engine.readExtent(stream, position, ctx.config.readBytesMax), (extent) => {
    const etag = `"${stream.id}:${extent.start}:${extent.end}${extent.closedAtEnd ? ':c' : ''}"`
    const headers = readHeaders(ctx, stream, extent, etag, clientCursor)
    if (conditional && ifNoneMatch(x.header('if-none-match'), etag)) return x.send(304, headers)
    headers.push(['Content-Type', stream.config.contentType.value])
    if (extent.end - extent.start > ctx.pieceBytes) return sendPieces(x, ctx, stream, extent, headers, wantsGzip(x, stream))
    return andThen(stream.read(extent.start, extent.end), (parts) => sendParts(x, ctx, stream, parts, headers))
  })
}

function sendNow(x: Exchange, ctx: HttpContext, stream: Stream): void {
  const headers: Array<[string, string]> = [
    ['Content-Type', stream.config.contentType.value],
    ['Stream-Next-Offset', formatOffset(stream.tail)],
    ['Stream-Up-To-Date', 'true'],
    ['Cache-Control', 'no-store'],
    ['Stream-Cursor', ctx.cursor(undefined)],
  ]
  if (stream.closed) headers.push(['Stream-Closed', 'true'])
  x.send(200, headers, stream.config.json ? '[]' : '')
}

function readHeaders(ctx: HttpContext, stream: Stream, read: ReadExtent, etag: string, clientCursor: string | undefined): Array<[string, string]> {
  const list: Array<[string, string]> = [
    ['Stream-Next-Offset', formatOffset(read.end)],
    ['Stream-Cursor', ctx.cursor(clientCursor)],
    ['ETag', etag],
    ['Cache-Control', read.upToDate && !stream.closed ? CACHE_TAIL : ctx.auth === undefined ? CACHE_IMMUTABLE : CACHE_IMMUTABLE_PRIVATE],
  ]
  if (read.upToDate) list.push(['Stream-Up-To-Date', 'true'])
  if (read.closedAtEnd) list.push(['Stream-Closed', 'true'])
  return list
}

/** A body of one piece or less, in one write (gzipped when asked and worth it). */
function sendParts(x: Exchange, ctx: HttpContext, stream: Stream, stored: Uint8Array[], headers: Array<[string, string]>): MaybePromise<void> {
  const parts = stream.config.json ? jsonArrayParts(stored) : stored
  let length = 0
  for (const part of parts) length += part.length
  if (length < ctx.config.gzipMinBytes || !wantsGzip(x, stream)) return x.send(200, headers, ctx.joinForSend(parts, length))
  headers.push(['Content-Encoding', 'gzip'], ['Vary', 'Accept-Encoding'])
  // zlib reads its input on the thread pool, after this turn: it needs bytes of its own,
  // neither the shared send buffer nor a pooled file-read buffer (see StreamLog.read).
  return gzipAsync(Buffer.concat(parts)).then((zipped) => x.send(200, headers, zipped))
}

function ifNoneMatch(header: string, etag: string): boolean {
  if (header === '') return false
  return header.split(',').some((candidate) => {
    const tag = candidate.trim()
    return tag === etag || tag === `W/${etag}` || tag === '*'
  })
}

/** The client accepts gzip and the stream's type compresses. */
function wantsGzip(x: Exchange, stream: Stream): boolean {
  return /\bgzip\b/i.test(x.header('accept-encoding')) && COMPRESSIBLE.test(stream.config.contentType.essence)
}

function sendLongPollEmpty(x: Exchange, ctx: HttpContext, stream: Stream, position: number, clientCursor: string | undefined): void {
  const headers: Array<[string, string]> = [
    ['Stream-Next-Offset', formatOffset(position)],
    ['Stream-Up-To-Date', 'true'],
    ['Stream-Cursor', ctx.cursor(clientCursor)],
    ['Cache-Control', 'no-store'],
  ]
  if (stream.closed) headers.push(['Stream-Closed', 'true'])
  x.send(204, headers)
}

function longPoll(x: Exchange, ctx: HttpContext, stream: Stream, position: number, clientCursor: string | undefined): MaybePromise<void> {
  if (position < stream.tail) return sendFrom(x, ctx, stream, position, clientCursor, false)
  if (stream.closed) return sendLongPollEmpty(x, ctx, stream, position, clientCursor)
  const wait = new LongPollWait(x, ctx, stream, position, clientCursor)
  wait.start()
}

/** One waiting long-poll: answers on new data, closure, deletion, timeout or shutdown. */
class LongPollWait implements Waiter, Closable {
  readonly kind = 'long-poll'
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly x: Exchange,
    private readonly ctx: HttpContext,
    private readonly stream: Stream,
    private readonly position: number,
    private readonly clientCursor: string | undefined,
  ) {}

  start(): void {
    addWaiter(this.stream, this)
    this.ctx.live.add(this)
    this.stream.pins++
    this.timer = setTimeout(() => this.finish(), this.ctx.config.longPollTimeoutMs)
    this.x.onAbort(() => this.cleanup())
  }

  wake(): void {
    this.finish()
  }

  shutdown(): void {
    this.finish()
  }

  private finish(): void {
    this.cleanup()
    if (this.x.done) return
    const { stream, x, ctx } = this
    const gone = ctx.engine.registry.goneReason(stream)
    if (gone !== undefined) return x.sendError(gone)
    if (this.position < stream.tail) {
      const sent = sendFrom(x, ctx, stream, this.position, this.clientCursor, false)
      if (sent instanceof Promise) sent.catch((error: unknown) => x.sendError(error))
      return
    }
    sendLongPollEmpty(x, ctx, stream, this.position, this.clientCursor)
  }

  private cleanup(): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    removeWaiter(this.stream, this)
    // Pinned while live: the stream object must stay the one the registry serves.
    if (this.ctx.live.delete(this)) this.stream.pins--
  }
}
