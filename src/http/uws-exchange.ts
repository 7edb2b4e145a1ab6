// http/uws-exchange.ts — the Exchange of uWebSockets.js: a snapshot of the request head
// (uWS request objects die when the handler returns), body reading with a size limit, abort
// tracking, and response writing with the headers every response carries, each write corked.

import { StreamError } from '../protocol/errors.js'
import { STATUS_TEXT } from './status-table.js'
import type { HttpRequest, HttpResponse } from './uws.js'
import { type BodyCallback, CAPTURED, COMMON_HEADERS, type Exchange, KNOWN_METHODS, type RequestHeader, type ResponseObserver, errorResponse, tooLarge } from './exchange.js'

/** Each method's captured names, also as bytes: uWS converts a string argument to UTF-8 in a
 * fresh allocation on every call, a byte view it reads in place. */
const CAPTURED_BYTES: Record<string, readonly Uint8Array[]> = Object.fromEntries(
  Object.entries(CAPTURED).map(([method, names]) => [method, names.map((name) => Buffer.from(name, 'latin1'))]),
)
const NOTHING_CAPTURED: readonly RequestHeader[] = []

export class UwsExchange implements Exchange {
  readonly method: string
  readonly url: string
  readonly query: string
  /** The names this method captures and their values ('' when absent), index for index. */
  private readonly names: readonly RequestHeader[]
  private readonly values: string[] = []
  aborted = false
  /** Set by the router once it knows (metrics' route index: see ResponseObserver). */
  route: number | undefined
  private finished = false
  private abortHandlers: Array<() => void> = []

  constructor(
    readonly res: HttpResponse,
    req: HttpRequest,
    private readonly observe?: ResponseObserver,
  ) {
    const method = req.getCaseSensitiveMethod()
    this.method = KNOWN_METHODS.has(method) ? method : method.toUpperCase()
    this.url = req.getUrl()
    this.query = req.getQuery() ?? ''
    this.names = (CAPTURED as Record<string, readonly RequestHeader[]>)[this.method] ?? NOTHING_CAPTURED
    const keys = CAPTURED_BYTES[this.method]
    for (let i = 0; i < this.names.length; i++) this.values.push(req.getHeader(keys![i]!))
    res.onAborted(() => {
      this.aborted = true
      for (const handler of this.abortHandlers) handler()
      this.abortHandlers = []
    })
  }

  header(name: RequestHeader): string {
    return this.values[this.indexOf(name)]!
  }

  hasHeader(name: RequestHeader): boolean {
    return this.values[this.indexOf(name)] !== ''
  }

  /** The captured request headers that were sent, as name/value pairs (forwarding). */
  sentHeaders(): Array<[string, string]> {
    const sent: Array<[string, string]> = []
    this.names.forEach((name, i) => {
      if (this.values[i] !== '') sent.push([name, this.values[i]!])
    })
    return sent
  }

  /** A handler reading a header its method does not capture is a bug, not a missing header. */
  private indexOf(name: RequestHeader): number {
    const index = this.names.indexOf(name)
    if (index < 0) throw new Error(`${this.method} handler reads ${name}, which CAPTURED does not list for ${this.method}`)
    return index
  }

  get done(): boolean {
    return this.aborted || this.finished
  }

  onAbort(handler: () => void): void {
    this.abortHandlers.push(handler)
  }

  /** The body being read, once readBody() was called (uWS hands the body over only to a
   * reader attached in the request's own callback: an asynchronous auth check reads it first). */
  private body: Promise<Buffer> | undefined
  /** Who waits for the body while it comes; then what came (later readers get it at once:
   * a POST read with readBodyThen may still be forwarded, which reads it again). */
  private bodyWaiters: BodyCallback[] | undefined
  private bodyOutcome: { readonly error: unknown; readonly body: Buffer | undefined } | undefined

  /** Reads the whole body (once; later calls get the same promise); rejects with
   * PAYLOAD_TOO_LARGE past `bytesMax`. */
  readBody(bytesMax: number): Promise<Buffer> {
    this.body ??= new Promise((resolve, reject) => this.readBodyThen(bytesMax, (error, body) => (error === undefined ? resolve(body!) : reject(error))))
    return this.body
  }

  readBodyThen(bytesMax: number, done: BodyCallback): void {
    if (this.bodyOutcome !== undefined) return done(this.bodyOutcome.error, this.bodyOutcome.body)
    if (this.bodyWaiters !== undefined) return void this.bodyWaiters.push(done)
    this.bodyWaiters = [done]
    this.readBodyOnce(bytesMax, (error, body) => {
      this.bodyOutcome = { error, body }
      const waiters = this.bodyWaiters!
      this.bodyWaiters = undefined
      for (const waiter of waiters) waiter(error, body)
    })
  }

  private readBodyOnce(bytesMax: number, done: BodyCallback): void {
    const declared = this.header('content-length')
    const length = declared === '' ? -1 : Number(declared)
    if (length > bytesMax) return done(tooLarge(bytesMax), undefined)
    const exact = length >= 0 ? Buffer.allocUnsafe(length) : undefined
    const chunks: Buffer[] = []
    let received = 0
    let settled = false
    const finish = (error: unknown, body: Buffer | undefined): void => {
      if (settled) return
      settled = true
      done(error, body)
    }
    this.onAbort(() => finish(new StreamError('BAD_REQUEST', 'request aborted'), undefined))
    this.res.onData((chunk, isLast) => {
      if (settled) return
      const size = chunk.byteLength
      if (received + size > bytesMax || (exact !== undefined && received + size > exact.length)) return finish(tooLarge(bytesMax), undefined)
      if (exact !== undefined) exact.set(new Uint8Array(chunk), received)
      else chunks.push(Buffer.from(new Uint8Array(chunk)))
      received += size
      if (!isLast) return
      finish(undefined, exact !== undefined ? exact.subarray(0, received) : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks))
    })
  }

  /** Writes a complete response; 204, 304 and HEAD responses carry no body or length. */
  send(status: number, headers: Array<[string, string]>, body: Uint8Array | string = '', closeConnection = false): void {
    if (this.done) return
    this.finished = true
    this.observe?.(this.method, this.url, status, this.route)
    const res = this.res
    res.cork(() => {
      this.writeHead(status, headers)
      if (status === 204 || status === 304 || this.method === 'HEAD') {
        // uWS writes a bogus Content-Length when given an explicit undefined length.
        if (closeConnection) res.endWithoutBody(0, true)
        else res.endWithoutBody()
      } else {
        res.end(body, closeConnection)
      }
    })
  }

  sendError(error: unknown): void {
    const reply = errorResponse(error)
    this.send(reply.status, reply.headers, reply.body, reply.closeConnection)
  }

  /** Starts a streaming (chunked) response: status and headers now, body via write(). */
  startStream(status: number, headers: Array<[string, string]>): void {
    this.observe?.(this.method, this.url, status, this.route)
    this.res.cork(() => this.writeHead(status, headers))
  }

  /** Marks a streaming response finished and ends it. */
  endStream(): void {
    if (this.done) return
    this.finished = true
    this.res.cork(() => this.res.end())
  }

  /** Ends a streaming response that cannot be finished: the connection closes before the
   * body's end, so the client knows the body is incomplete. */
  closeStream(): void {
    if (this.done) return
    this.finished = true
    this.res.close()
  }

  write(chunk: Uint8Array): boolean {
    if (this.done) return false
    const res = this.res
    let writable = true
    res.cork(() => {
      writable = res.write(chunk)
    })
    return writable
  }

  /** One handler per response (uWS keeps one): the last one given wins. */
  onWritable(handler: () => void): void {
    this.res.onWritable(() => {
      handler()
      return true
    })
  }

  /** Status line, the headers every response carries, then the response's own. */
  private writeHead(status: number, headers: ReadonlyArray<readonly [string, string]>): void {
    this.res.writeStatus(statusLine(status))
    this.res.writeHeader(COMMON_HEADERS_NAME, COMMON_HEADERS_REST)
    writeHeaders(this.res, headers)
  }
}

/** Status lines as bytes, made once each (see CAPTURED_BYTES). */
const STATUS_LINES = new Map<number, Uint8Array>()

function statusLine(status: number): Uint8Array {
  let line = STATUS_LINES.get(status)
  if (line === undefined) {
    line = Buffer.from(STATUS_TEXT[status] ?? String(status), 'latin1')
    STATUS_LINES.set(status, line)
  }
  return line
}

/** Header names as bytes, made once each; names are the handlers' constants. */
const HEADER_NAMES = new Map<string, Uint8Array>()

/** Writes a response's own headers in one uWS call: uWS writes `name: value\r\n` verbatim,
 * so the first header's value carries the other lines, and only that one joined string is
 * converted (not every name and value on its own). */
function writeHeaders(res: HttpResponse, headers: ReadonlyArray<readonly [string, string]>): void {
  if (headers.length === 0) return
  const first = headers[0]![0]
  let name = HEADER_NAMES.get(first)
  if (name === undefined) {
    name = Buffer.from(first, 'latin1')
    HEADER_NAMES.set(first, name)
  }
  let value = headers[0]![1]
  for (let i = 1; i < headers.length; i++) value += `\r\n${headers[i]![0]}: ${headers[i]![1]}`
  res.writeHeader(name, value)
}

/** The headers every response carries, encoded once and written in one uWS call (see
 * writeHeaders). */
const COMMON_HEADERS_NAME = Buffer.from(COMMON_HEADERS[0]![0], 'latin1')
const COMMON_HEADERS_REST = Buffer.from([COMMON_HEADERS[0]![1], ...COMMON_HEADERS.slice(1).map(([name, value]) => `${name}: ${value}`)].join('\r\n'))
