// streams/fork.ts — creating a fork: a new stream that reads positions [0, base) through its
// source and owns everything after. A sub-offset materializes the first N bytes (binary)
// or N messages (JSON) of the source append that starts at the fork offset into the fork.

import { StreamError, badRequest } from '../protocol/errors.js'
import type { CreateRequest, Engine } from './engine.js'
import type { Stream } from './stream.js'

export interface ForkRequest {
  /** Source stream path (already stripped of the route prefix). */
  readonly sourcePath: string
  /** Fork position in the source; undefined means the source's tail. */
  readonly position: number | undefined
  /** 0 when absent. */
  readonly subOffset: number
}

export function createFork(engine: Engine, request: CreateRequest, fork: ForkRequest, requestKey: string): Stream {
  const source = engine.registry.find(fork.sourcePath)
  if (source === undefined) throw new StreamError('NOT_FOUND', 'fork source stream not found')
  if (source.softDeleted) throw new StreamError('CONFIG_MISMATCH', 'fork source stream was deleted')
  const contentType = request.contentType ?? source.config.contentType
  if (contentType.essence !== source.config.contentType.essence) {
    throw new StreamError('CONFIG_MISMATCH', `fork content type must match the source (${source.config.contentType.essence})`)
  }
  const base = fork.position ?? source.tail
  if (base > source.tail) throw badRequest('Stream-Fork-Offset is beyond the end of the source stream')
  if (!source.isBoundary(base)) throw badRequest('Stream-Fork-Offset is not at a message boundary')
  const slice = fork.subOffset > 0 ? subOffsetSlice(source, base, fork.subOffset) : undefined
  const inherit = request.ttlSeconds === undefined && request.expiresAtMs === undefined
  const ttl = inherit ? source.config.ttlSeconds : request.ttlSeconds
  const expiresAt = inherit ? source.config.expiresAtMs : request.expiresAtMs
  const config = engine.configFor(request, contentType, requestKey, ttl, expiresAt)
  const stream = engine.newStream(request.path, config, source, base)
  if (slice !== undefined) stream.appendBytes(slice.bytes, slice.messageEnds)
  return stream
}

interface Slice {
  readonly bytes: Uint8Array
  readonly messageEnds: number[] | undefined
}

function subOffsetSlice(source: Stream, position: number, subOffset: number): Slice {
  const span = source.appendAt(position)
  if (span === undefined) throw badRequest('Stream-Fork-Sub-Offset needs an append starting at Stream-Fork-Offset')
  let end: number
  let messageEnds: number[] | undefined
  if (source.config.json) {
    const ends = source.messageEndsWithin(span.start, span.end)
    if (subOffset > ends.length) throw badRequest(`Stream-Fork-Sub-Offset exceeds the ${ends.length} messages of that append`)
    end = ends[subOffset - 1]!
    messageEnds = ends.slice(0, subOffset).map((at) => at - position)
  } else {
    if (subOffset > span.end - span.start) throw badRequest(`Stream-Fork-Sub-Offset exceeds the ${span.end - span.start} bytes of that append`)
    end = position + subOffset
  }
  const parts = source.read(position, end)
  return { bytes: parts.length === 1 ? Uint8Array.from(parts[0]!) : Buffer.concat(parts), messageEnds }
}
