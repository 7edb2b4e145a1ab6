// http/node-exchange.ts — the Exchange of node:http, the fallback backend for where
// uWebSockets.js does not load (Node releases or C libraries its builds do not cover): the
// same request head, body limit, abort tracking and responses as uws-exchange.ts, on
// IncomingMessage and ServerResponse.

import type { IncomingMessage, ServerResponse } from 'node:http'
import { StreamError } from '../protocol/errors.js'
import { type BodyCallback, CAPTURED, COMMON_HEADERS, type Exchange, KNOWN_METHODS, type RequestHeader, type ResponseObserver, errorResponse, tooLarge } from './exchange.js'
import { STATUS_TEXT } from './status-table.js'

const NOTHING_CAPTURED: readonly RequestHeader[] = []
/** The most of a refused body read and dropped before the connection is cut. */
const DISCARD_BYTES_MAX = 64 * 1024 * 1024

export class NodeExchange implements Exchange {
  readonly method: string
  readonly url: string
  readonly query: string
  private readonly names: readonly RequestHeader[]
  aborted = false
  route: number | undefined
  private finished = false
  private abortHandlers: Array<() => void> = []
  private body: Promise<Buffer> | undefined

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly observe?: ResponseObserver,
  ) {
    const method = req.method ?? 'GET'
    this.method = KNOWN_METHODS.has(method) ? method : method.toUpperCase()
    const target = req.url ?? '/'
    const mark = target.indexOf('?')
    this.url = mark < 0 ? target : target.slice(0, mark)
    this.query = mark < 0 ? '' : target.slice(mark + 1)
    this.names = (CAPTURED as Record<string, readonly RequestHeader[]>)[this.method] ?? NOTHING_CAPTURED
    res.once('close', () => {
      if (res.writableFinished) return
      this.aborted = true
      for (const handler of this.abortHandlers) handler()
      this.abortHandlers = []
    })
  }

  header(name: RequestHeader): string {
    if (!this.names.includes(name)) throw new Error(`${this.method} handler reads ${name}, which CAPTURED does not list for ${this.method}`)
    const value = this.req.headers[name]
    return value === undefined ? '' : Array.isArray(value) ? value.join(', ') : value
  }

  hasHeader(name: RequestHeader): boolean {
    return this.header(name) !== ''
  }

  sentHeaders(): Array<[string, string]> {
    const sent: Array<[string, string]> = []
    for (const name of this.names) {
      const value = this.header(name)
      if (value !== '') sent.push([name, value])
    }
    return sent
  }

  get done(): boolean {
    return this.aborted || this.finished
  }

  onAbort(handler: () => void): void {
    this.abortHandlers.push(handler)
  }

  readBody(bytesMax: number): Promise<Buffer> {
    this.body ??= this.readBodyOnce(bytesMax)
    return this.body
  }

  readBodyThen(bytesMax: number, done: BodyCallback): void {
    this.readBody(bytesMax).then((body) => done(undefined, body), (error: unknown) => done(error, undefined))
  }

  private readBodyOnce(bytesMax: number): Promise<Buffer> {
    const declared = this.header('content-length')
    if (declared !== '' && Number(declared) > bytesMax) {
      this.discardBody()
      return Promise.reject(tooLarge(bytesMax))
    }
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = []
      let received = 0
      this.onAbort(() => reject(new StreamError('BAD_REQUEST', 'request aborted')))
      const onData = (chunk: Buffer): void => {
        received += chunk.length
        if (received <= bytesMax) return void chunks.push(chunk)
        this.req.off('data', onData)
        chunks.length = 0
        this.discardBody()
        reject(tooLarge(bytesMax))
      }
      this.req.on('data', onData)
      this.req.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)))
      this.req.once('error', () => reject(new StreamError('BAD_REQUEST', 'request aborted')))
    })
  }

  /** Reads and drops the rest of a refused body, so the client can finish sending and read
   * the answer (closing at once makes its write fail before it sees the 413); one that goes
   * on past DISCARD_BYTES_MAX loses its connection. */
  private discardBody(): void {
    let discarded = 0
    this.req.on('data', (chunk: Buffer) => {
      discarded += chunk.length
      if (discarded > DISCARD_BYTES_MAX) this.req.socket.destroy()
    })
    this.req.resume()
  }

  /** Takes no closeConnection: a refused body is read and dropped (discardBody), and the
   * connection stays usable. */
  send(status: number, headers: Array<[string, string]>, body: Uint8Array | string = ''): void {
    if (this.done) return
    this.finished = true
    this.observe?.(this.method, this.url, status, this.route)
    const res = this.res
    const empty = status === 204 || status === 304 || this.method === 'HEAD'
    const bytes = empty ? undefined : typeof body === 'string' ? Buffer.from(body) : body
    this.writeHead(status, headers, bytes === undefined ? undefined : bytes.length)
    res.end(bytes)
  }

  sendError(error: unknown): void {
    const reply = errorResponse(error)
    this.send(reply.status, reply.headers, reply.body)
  }

  startStream(status: number, headers: Array<[string, string]>): void {
    if (this.done) return
    this.observe?.(this.method, this.url, status, this.route)
    this.writeHead(status, headers, undefined)
    this.res.flushHeaders()
  }

  write(chunk: Uint8Array): boolean {
    if (this.done) return false
    return this.res.write(chunk)
  }

  onWritable(handler: () => void): void {
    this.res.on('drain', handler)
  }

  endStream(): void {
    if (this.done) return
    this.finished = true
    this.res.end()
  }

  closeStream(): void {
    if (this.done) return
    this.finished = true
    this.res.destroy()
  }

  private writeHead(status: number, headers: ReadonlyArray<readonly [string, string]>, length: number | undefined): void {
    const flat: string[] = []
    for (const [name, value] of COMMON_HEADERS) flat.push(name, value)
    for (const [name, value] of headers) flat.push(name, value)
    if (length !== undefined) flat.push('Content-Length', String(length))
    this.res.writeHead(status, STATUS_TEXT[status]?.replace(/^\d+ /, '') ?? '', flat)
  }
}
