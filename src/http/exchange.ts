// http/exchange.ts — one request/response pair as every handler sees it, whichever HTTP
// backend serves it: uWebSockets.js (uws-exchange.ts) or node:http (node-exchange.ts). The
// request head (only the headers each method's handler reads), the body with a size limit,
// abort tracking, and writing a whole response or a streamed one with backpressure. Also
// what both backends share: the captured header names and the headers every response carries.

import { StreamError } from '../protocol/errors.js'
import { errorReply } from './status-table.js'
import { log } from '../util/log.js'

/** The request headers each method's handler reads, and only those: every getHeader is a
 * call into uWS, and the append path is measured in microseconds. */
export const CAPTURED = {
  GET: ['accept-encoding', 'if-none-match', 'authorization'],
  HEAD: ['authorization'],
  POST: ['authorization', 'content-type', 'content-length', 'producer-id', 'producer-epoch', 'producer-seq', 'stream-seq', 'stream-closed'],
  PUT: [
    'authorization',
    'content-type',
    'content-length',
    'host',
    'stream-ttl',
    'stream-expires-at',
    'stream-closed',
    'stream-durability',
    'stream-forked-from',
    'stream-fork-offset',
    'stream-fork-sub-offset',
  ],
  DELETE: ['authorization'],
  OPTIONS: [],
} as const satisfies Record<string, readonly string[]>


export type RequestHeader = (typeof CAPTURED)[keyof typeof CAPTURED][number]

const EXPOSED_HEADERS = [
  'Stream-Next-Offset',
  'Stream-Cursor',
  'Stream-Up-To-Date',
  'Stream-Closed',
  'Stream-TTL',
  'Stream-Expires-At',
  'Stream-SSE-Data-Encoding',
  'Stream-Durability',
  'Producer-Epoch',
  'Producer-Seq',
  'Producer-Expected-Seq',
  'Producer-Received-Seq',
  'ETag',
  'Location',
  'Ringstream-Node',
  'Content-Type',
  'Content-Encoding',
].join(', ')

/** Told the status of every response (metrics); must be cheap: it runs per request.
 * `route`: the router's verdict when it has one (a stream request), saving the observer a
 * look at the URL. */
export type ResponseObserver = (method: string, url: string, status: number, route: number | undefined) => void


export type BodyCallback = (error: unknown, body: Buffer | undefined) => void

export interface Exchange {
  readonly method: string
  /** The path, without the query string. */
  readonly url: string
  /** The query string without '?', '' when none. */
  readonly query: string
  /** The client went away. */
  readonly aborted: boolean
  /** The response is complete, or the client went away: nothing more may be written. */
  readonly done: boolean
  /** Set by the router once it knows (metrics' route index: see ResponseObserver). */
  route: number | undefined
  /** A captured request header's value, '' when absent. */
  header(name: RequestHeader): string
  hasHeader(name: RequestHeader): boolean
  /** The captured request headers that were sent, as name/value pairs (forwarding). */
  sentHeaders(): Array<[string, string]>
  onAbort(handler: () => void): void
  /** Reads the whole body (once; later calls get the same promise); rejects with
   * PAYLOAD_TOO_LARGE past `bytesMax`. Must be called in the request's own turn when the
   * body is wanted at all (uWS hands it over only to a reader attached then). */
  readBody(bytesMax: number): Promise<Buffer>
  /** readBody's callback form, for the append path (no promise per request): `done` gets
   * the error readBody would reject with, or the body. */
  readBodyThen(bytesMax: number, done: BodyCallback): void
  /** Writes a complete response; 204, 304 and HEAD responses carry no body or length. */
  send(status: number, headers: Array<[string, string]>, body?: Uint8Array | string, closeConnection?: boolean): void
  /** The error as the status table says, as JSON. */
  sendError(error: unknown): void
  /** Starts a streamed (chunked) response: status and headers now, the body by write(). */
  startStream(status: number, headers: Array<[string, string]>): void
  /** Writes body bytes of a streamed response (they are sent or copied before it returns);
   * false when the connection holds unsent bytes: wait for onWritable. */
  write(chunk: Uint8Array): boolean
  /** Called whenever the connection can take more after write() returned false. */
  onWritable(handler: () => void): void
  /** Ends a streamed response. */
  endStream(): void
  /** Ends a streamed response that cannot be finished: the connection closes before the
   * body's end, so the client knows the body is incomplete. */
  closeStream(): void
}

/** The error response for `error` (an unexpected one is logged and answered 500). */
export function errorResponse(error: unknown): { status: number; headers: Array<[string, string]>; body: string; closeConnection: boolean } {
  const streamError = error instanceof StreamError ? error : new StreamError('IO_ERROR', 'internal error')
  if (!(error instanceof StreamError)) log.error({ err: error }, `ringstream: unexpected error: ${(error as Error)?.message ?? String(error)}`)
  const reply = errorReply(streamError)
  return { ...reply, closeConnection: streamError.code === 'PAYLOAD_TOO_LARGE' }
}

export function tooLarge(bytesMax: number): StreamError {
  return new StreamError('PAYLOAD_TOO_LARGE', `request body larger than ${bytesMax} bytes`)
}

export const KNOWN_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS'])

/** The headers every response carries. */
export const COMMON_HEADERS: ReadonlyArray<readonly [string, string]> = [
  ['X-Content-Type-Options', 'nosniff'],
  ['Cross-Origin-Resource-Policy', 'cross-origin'],
  ['Access-Control-Allow-Origin', '*'],
  ['Access-Control-Expose-Headers', EXPOSED_HEADERS],
]
