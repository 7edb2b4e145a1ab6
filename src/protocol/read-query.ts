// protocol/read-query.ts — the query of a read (PROTOCOL §5): `offset` (at most once),
// `live` (long-poll or sse, which needs an offset) and the echoed `cursor`. Shared by the
// catch-up and long-poll reads (http/read.ts) and SSE (http/sse.ts).

import { StreamError, badRequest } from './errors.js'
import { type OffsetParam, parseOffsetParam } from './offset.js'

export interface ReadQuery {
  readonly offset: OffsetParam
  readonly live: 'long-poll' | 'sse' | undefined
  readonly cursor: string | undefined
}

export function parseReadQuery(query: string): ReadQuery {
  const params = new URLSearchParams(query)
  const offsets = params.getAll('offset')
  if (offsets.length > 1) throw new StreamError('INVALID_OFFSET', 'offset may be given only once')
  const liveRaw = params.get('live')
  if (liveRaw !== null && liveRaw !== 'long-poll' && liveRaw !== 'sse') throw badRequest('live must be long-poll or sse')
  const live = liveRaw ?? undefined
  if (live !== undefined && offsets.length === 0) throw badRequest(`live=${live} requires an offset`)
  return {
    offset: parseOffsetParam(offsets[0]),
    live,
    cursor: params.get('cursor') ?? undefined,
  }
}
