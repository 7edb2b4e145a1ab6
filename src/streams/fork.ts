// streams/fork.ts — preparing a fork: a new stream that reads positions [0, base) through
// its source and owns everything after. A sub-offset materializes the first N bytes
// (binary) or N messages (JSON) of the source append that starts at the fork offset.
// Preparation may read the source (asynchronously on disk); the engine re-checks the
// source before creating the fork.

import { StreamError, badRequest } from '../protocol/errors.js'
import type { ContentType } from '../protocol/headers.js'
import type { AppendChunk } from '../storage/types.js'
import { type MaybePromise, andThen } from '../util/maybe.js'
import type { Registry } from './registry.js'
import type { Stream } from './stream.js'

export interface ForkRequest {
  /** Source stream path (already stripped of the route prefix). */
  readonly sourcePath: string
  /** Fork position in the source; undefined means the source's tail. */
  readonly position: number | undefined
  /** 0 when absent. */
  readonly subOffset: number
}

export interface PreparedFork {
  readonly source: Stream
  readonly base: number
  readonly contentType: ContentType
  readonly slice: AppendChunk | undefined
}

/** The source stream, live, or a StreamError. */
export function forkSource(registry: Registry, sourcePath: string): Stream {
  const source = registry.find(sourcePath)
  if (source === undefined) throw new StreamError('NOT_FOUND', 'fork source stream not found')
  if (source.softDeleted) throw new StreamError('CONFIG_MISMATCH', 'fork source stream was deleted')
  return source
}

export function prepareFork(registry: Registry, fork: ForkRequest, requested: ContentType | undefined): MaybePromise<PreparedFork> {
  const source = forkSource(registry, fork.sourcePath)
  const contentType = requested ?? source.config.contentType
  if (contentType.essence !== source.config.contentType.essence) {
    throw new StreamError('CONFIG_MISMATCH', `fork content type must match the source (${source.config.contentType.essence})`)
  }
  const base = fork.position ?? source.tail
  if (base > source.tail) throw badRequest('Stream-Fork-Offset is beyond the end of the source stream')
  return andThen(source.isBoundary(base), (boundary) => {
    if (!boundary) throw badRequest('Stream-Fork-Offset is not at a message boundary')
    if (fork.subOffset === 0) return { source, base, contentType, slice: undefined }
    return andThen(subOffsetSlice(source, base, fork.subOffset), (slice) => ({ source, base, contentType, slice }))
  })
}

function subOffsetSlice(source: Stream, position: number, subOffset: number): MaybePromise<AppendChunk> {
  return andThen(source.appendAt(position), (span) => {
    if (span === undefined) throw badRequest('Stream-Fork-Sub-Offset needs an append starting at Stream-Fork-Offset')
    if (!source.config.json) {
      if (subOffset > span.end - span.start) throw badRequest(`Stream-Fork-Sub-Offset exceeds the ${span.end - span.start} bytes of that append`)
      return andThen(source.readCopy(position, position + subOffset), (bytes) => ({ bytes, messageEnds: undefined }))
    }
    return andThen(source.messagesWithin(span.start, span.end, subOffset), ({ count, ends }) => {
      if (subOffset > count) throw badRequest(`Stream-Fork-Sub-Offset exceeds the ${count} messages of that append`)
      const messageEnds = ends.map((at) => at - position)
      return andThen(source.readCopy(position, ends[subOffset - 1]!), (bytes) => ({ bytes, messageEnds }))
    })
  })
}
