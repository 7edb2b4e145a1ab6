// http/status-table.ts — the one table from StreamError codes to HTTP status and headers.
// Nothing else in the server chooses an error status.

import type { ErrorCode, StreamError } from '../protocol/errors.js'

export const STATUS_TEXT: Readonly<Record<number, string>> = {
  200: '200 OK',
  201: '201 Created',
  204: '204 No Content',
  304: '304 Not Modified',
  400: '400 Bad Request',
  403: '403 Forbidden',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  409: '409 Conflict',
  410: '410 Gone',
  413: '413 Payload Too Large',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable',
  507: '507 Insufficient Storage',
}

const STATUS_BY_CODE: Readonly<Record<ErrorCode, number>> = {
  BAD_REQUEST: 400,
  INVALID_OFFSET: 400,
  INVALID_PATH: 400,
  NOT_FOUND: 404,
  GONE: 410,
  METHOD_NOT_ALLOWED: 405,
  CONFIG_MISMATCH: 409,
  CONTENT_TYPE_MISMATCH: 409,
  STREAM_CLOSED: 409,
  STREAM_SEQ_CONFLICT: 409,
  PRODUCER_STALE_EPOCH: 403,
  PRODUCER_SEQ_GAP: 409,
  PRODUCER_EPOCH_SEQ: 400,
  PAYLOAD_TOO_LARGE: 413,
  SSE_NOT_SUPPORTED: 400,
  RESERVED_PATH: 400,
  INSUFFICIENT_STORAGE: 507,
  IO_ERROR: 500,
  SHUTTING_DOWN: 503,
  NOT_READY: 503,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  SUBSCRIPTION_NOT_FOUND: 404,
  SUBSCRIPTION_ALREADY_EXISTS: 409,
  WEBHOOK_URL_REJECTED: 400,
  TOKEN_INVALID: 401,
  TOKEN_EXPIRED: 401,
  FENCED: 409,
  ALREADY_CLAIMED: 409,
  NO_PENDING_WORK: 409,
  NODE_UNAVAILABLE: 503,
  NO_LEADER: 503,
  REPLICAS_UNAVAILABLE: 503,
}

export interface ErrorReply {
  readonly status: number
  readonly headers: Array<[string, string]>
  readonly body: string
}

export function errorReply(error: StreamError): ErrorReply {
  const headers: Array<[string, string]> = [['Content-Type', 'application/json']]
  const { details } = error
  if (error.code === 'STREAM_CLOSED') headers.push(['Stream-Closed', 'true'])
  if (details.nextOffset !== undefined) headers.push(['Stream-Next-Offset', details.nextOffset])
  if (details.currentEpoch !== undefined) headers.push(['Producer-Epoch', String(details.currentEpoch)])
  if (details.expectedSeq !== undefined) headers.push(['Producer-Expected-Seq', String(details.expectedSeq)])
  if (details.receivedSeq !== undefined) headers.push(['Producer-Received-Seq', String(details.receivedSeq)])
  if (error.code === 'METHOD_NOT_ALLOWED') headers.push(['Allow', 'GET, HEAD, PUT, POST, DELETE, OPTIONS'])
  if (error.code === 'NOT_READY' || error.code === 'NODE_UNAVAILABLE' || error.code === 'NO_LEADER' || error.code === 'REPLICAS_UNAVAILABLE') headers.push(['Retry-After', '1'])
  if (error.code === 'UNAUTHORIZED') headers.push(['WWW-Authenticate', 'Bearer'])
  const body = JSON.stringify({ error: { code: error.code, message: error.message, current_holder: details.currentHolder, generation: details.generation } })
  return { status: STATUS_BY_CODE[error.code], headers, body }
}
