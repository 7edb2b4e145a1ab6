// http/write.ts — PUT (create / fork), POST (append / close) and DELETE. Headers are parsed
// before the body is read so a malformed request is refused without buffering its body.

import { StreamError, badRequest } from '../protocol/errors.js'
import {
  parseContentType,
  parseDurability,
  type ProducerHeaders,
  parseExpiresAt,
  parseProducerHeaders,
  parseStreamClosed,
  parseStreamSeq,
  parseSubOffset,
  parseTtlSeconds,
} from '../protocol/headers.js'
import { formatOffset, parseOffsetToken } from '../protocol/offset.js'
import { decodeStreamPath } from '../protocol/path.js'
import type { AppendResult } from '../streams/engine.js'
import type { ForkRequest } from '../streams/fork.js'
import type { Stream } from '../streams/stream.js'
import type { HttpContext } from './context.js'
import type { Exchange } from './exchange.js'

export const STREAM_ROUTE_PREFIX = '/v1/stream/'

function streamHeaders(stream: Stream): Array<[string, string]> {
  const headers: Array<[string, string]> = [['Stream-Next-Offset', formatOffset(stream.tail)]]
  if (stream.closed) headers.push(['Stream-Closed', 'true'])
  return headers
}

/** Accepts `/v1/stream/<path>`, a bare `<path>`, or an absolute URL to a stream. */
function resolveStreamRef(ref: string, ctx: HttpContext): string {
  let path = ref.trim()
  if (/^https?:\/\//i.test(path)) {
    try {
      path = new URL(path).pathname
    } catch {
      throw badRequest('Stream-Forked-From is not a valid URL')
    }
  }
  if (path.startsWith(STREAM_ROUTE_PREFIX)) path = path.slice(STREAM_ROUTE_PREFIX.length)
  return decodeStreamPath(path, ctx.config.streamPathBytesMax)
}

function parseFork(x: Exchange, ctx: HttpContext): ForkRequest | undefined {
  const from = x.header('stream-forked-from')
  if (from === '') {
    if (x.hasHeader('stream-fork-offset') || x.hasHeader('stream-fork-sub-offset')) {
      throw badRequest('Stream-Fork-Offset and Stream-Fork-Sub-Offset need Stream-Forked-From')
    }
    return undefined
  }
  const rawOffset = x.header('stream-fork-offset')
  let position: number | undefined
  if (rawOffset !== '') {
    const parsed = parseOffsetToken(rawOffset.trim())
    if (parsed === null) throw new StreamError('INVALID_OFFSET', 'Stream-Fork-Offset is not a valid offset')
    position = parsed
  }
  const rawSub = x.header('stream-fork-sub-offset')
  const subOffset = rawSub === '' ? 0 : parseSubOffset(rawSub)
  return { sourcePath: resolveStreamRef(from, ctx), position, subOffset }
}

export async function handlePut(x: Exchange, ctx: HttpContext, path: string): Promise<void> {
  const rawType = x.header('content-type')
  const contentType = rawType === '' ? undefined : parseContentType(rawType)
  const rawTtl = x.header('stream-ttl')
  const rawExpires = x.header('stream-expires-at')
  if (rawTtl !== '' && rawExpires !== '') throw badRequest('send Stream-TTL or Stream-Expires-At, not both')
  const ttlSeconds = rawTtl === '' ? undefined : parseTtlSeconds(rawTtl)
  const expiresAtMs = rawExpires === '' ? undefined : parseExpiresAt(rawExpires)
  const closed = parseStreamClosed(x.header('stream-closed'))
  const fork = parseFork(x, ctx)
  const durability = parseDurability(x.header('stream-durability'))
  // Behind a path-hashing proxy, a fork of a stream another node holds is made there.
  const cluster = ctx.cluster
  const registry = ctx.engine.registry
  if (fork !== undefined && cluster !== undefined && registry.find(fork.sourcePath) === undefined) {
    // A stream here is never a fork of a source held elsewhere: its configuration differs.
    if (registry.find(path) !== undefined) throw new StreamError('CONFIG_MISMATCH', 'stream exists with a different configuration')
    // Taken now: uWS hands the body only to a reader attached in the request's callback.
    x.readBody(ctx.config.appendBytesMax).catch(() => {})
    if (await cluster.forkElsewhere(x, path, fork)) return
  }
  const body = await x.readBody(ctx.config.appendBytesMax)
  if (x.done) return
  const moved = ctx.cluster?.movedMeanwhile(x, path)
  if (moved !== undefined) return moved
  const [stream, created] = await ctx.engine.create({
    path,
    contentType,
    ttlSeconds,
    expiresAtMs,
    closed,
    body,
    fork,
    durability,
  })
  const headers = streamHeaders(stream)
  headers.push(['Content-Type', stream.config.contentType.value], ['Stream-Durability', stream.config.durability])
  if (created) headers.push(['Location', `${ctx.config.tlsCertFile === undefined ? 'http' : 'https'}://${x.header('host') || `${ctx.config.host}:${ctx.config.port}`}${x.url}`])
  x.send(created ? 201 : 200, headers)
}

/** POST, without a promise of its own: the body comes to a callback and the append answers
 * synchronously unless its commit waits for the disk (the append path is measured in
 * instructions per request; each promise and await cost some). Errors are answered here. */
export function handlePost(x: Exchange, ctx: HttpContext, path: string): void {
  const rawType = x.header('content-type')
  const close = parseStreamClosed(x.header('stream-closed'))
  const producer = parseProducerHeaders(
    x.header('producer-id'),
    x.header('producer-epoch'),
    x.header('producer-seq'),
    ctx.config.headerValueBytesMax,
  )
  const streamSeq = parseStreamSeq(x.header('stream-seq'), ctx.config.headerValueBytesMax)
  x.readBodyThen(ctx.config.appendBytesMax, (error, body) => {
    if (error !== undefined) return x.sendError(error)
    if (x.done) return
    try {
      // A move of the stream to another node that began while the body came: it goes there.
      const moved = ctx.cluster?.movedMeanwhile(x, path)
      if (moved !== undefined) return void moved.catch((error: unknown) => x.sendError(error))
      const contentType = body!.length > 0 && rawType !== '' ? parseContentType(rawType) : undefined
      ctx.engine.appendThen({ path, contentType, body: body!, close, producer, streamSeq }, (error, result) => {
        if (error !== undefined) x.sendError(error)
        else answerAppend(x, ctx, result!, producer, body!.length)
      })
    } catch (error) {
      x.sendError(error)
    }
  })
}

function answerAppend(x: Exchange, ctx: HttpContext, result: AppendResult, producer: ProducerHeaders | undefined, bodyBytes: number): void {
  const headers = streamHeaders(result.stream)
  if (result.producerEpoch !== undefined) headers.push(['Producer-Epoch', String(result.producerEpoch)])
  if (result.producerSeq !== undefined) headers.push(['Producer-Seq', String(result.producerSeq)])
  const status = result.outcome === 'appended' && producer !== undefined ? 200 : 204
  if (result.outcome === 'appended') ctx.metrics?.appended(bodyBytes)
  x.send(status, headers)
}

export async function handleDelete(x: Exchange, ctx: HttpContext, path: string): Promise<void> {
  // A move of the stream that began while this request was authorized: it goes there.
  const moved = ctx.cluster?.movedMeanwhile(x, path)
  if (moved !== undefined) return moved
  await ctx.engine.delete(path)
  x.send(204, [])
}
