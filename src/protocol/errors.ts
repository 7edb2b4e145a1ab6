// protocol/errors.ts — the one error type every layer throws for operating errors.
// Codes are stable strings; http/status-table.ts maps each code to a status and headers.

export type ErrorCode =
  | 'BAD_REQUEST'
  | 'INVALID_OFFSET'
  | 'INVALID_PATH'
  | 'NOT_FOUND'
  | 'GONE'
  | 'METHOD_NOT_ALLOWED'
  | 'CONFIG_MISMATCH'
  | 'CONTENT_TYPE_MISMATCH'
  | 'STREAM_CLOSED'
  | 'STREAM_SEQ_CONFLICT'
  | 'PRODUCER_STALE_EPOCH'
  | 'PRODUCER_SEQ_GAP'
  | 'PRODUCER_EPOCH_SEQ'
  | 'PAYLOAD_TOO_LARGE'
  | 'SSE_NOT_SUPPORTED'
  | 'RESERVED_PATH'
  | 'INSUFFICIENT_STORAGE'
  | 'IO_ERROR'
  | 'SHUTTING_DOWN'
  | 'NOT_READY'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'SUBSCRIPTION_NOT_FOUND'
  | 'SUBSCRIPTION_ALREADY_EXISTS'
  | 'WEBHOOK_URL_REJECTED'
  | 'TOKEN_INVALID'
  | 'TOKEN_EXPIRED'
  | 'FENCED'
  | 'ALREADY_CLAIMED'
  | 'NO_PENDING_WORK'
  | 'NODE_UNAVAILABLE'
  | 'NO_LEADER'
  | 'REPLICAS_UNAVAILABLE'

/** Structured details some codes carry; the status table turns them into headers. */
export interface ErrorDetails {
  currentEpoch?: number
  expectedSeq?: number
  receivedSeq?: number
  nextOffset?: string
  /** ALREADY_CLAIMED: who holds the lease, and its generation (in the JSON body). */
  currentHolder?: string
  generation?: number
}

export class StreamError extends Error {
  readonly code: ErrorCode
  readonly details: ErrorDetails

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message)
    this.name = 'StreamError'
    this.code = code
    this.details = details
  }
}

export function badRequest(message: string): StreamError {
  return new StreamError('BAD_REQUEST', message)
}
