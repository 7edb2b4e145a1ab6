// http/listener.ts — the HTTP side of a running server, on one of two backends decided once
// at startup (like the I/O backend): uWebSockets.js when it loads, node:http when it does
// not or when `--http node` asks for it. Either way it builds the app on the shared context
// (http/app.ts), binds the port (HTTPS when given a certificate and key, checked here first:
// uWS only says that listening failed) and lets it go again. `name` is what the startup line
// says, with the reason for a fallback.

import { readFileSync } from 'node:fs'
import { type IncomingMessage, type Server, type ServerResponse, createServer as createHttpServer } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { createSecureContext } from 'node:tls'
import type { HttpBackend } from '../config.js'
import { type TlsFiles, buildApp, handle } from './app.js'
import type { HttpContext } from './context.js'
import { NodeExchange } from './node-exchange.js'
import { type ListenSocket, type TemplatedApp, type Uws, UwsLoadError, loadUws } from './uws.js'

export interface ListenOptions {
  readonly host: string
  /** 0: an ephemeral port (see HttpListener.port). */
  readonly port: number
  readonly tlsCertFile: string | undefined
  readonly tlsKeyFile: string | undefined
  readonly http: HttpBackend
}

export interface HttpListener {
  /** The backend, as the startup line says it, e.g. "uws-pack" or "node:http (requested)". */
  readonly name: string
  /** The bound port. */
  readonly port: number
  /** Stops accepting new connections; open ones stay until close(). */
  stopListening(): void
  /** Stops accepting and closes every connection. */
  close(): void
}

/** Checks the TLS files, picks the backend, and listens with `ctx`'s handlers. */
export async function openListener(ctx: HttpContext, options: ListenOptions): Promise<HttpListener> {
  const tls = tlsFiles(options)
  let why = 'requested'
  if (options.http !== 'node') {
    try {
      const { uws, name } = await loadUws()
      return await UwsListener.open(uws, name, ctx, options, tls)
    } catch (error) {
      if (options.http === 'uws' || !(error instanceof UwsLoadError)) throw error
      why = `uWS: ${error.reason}`
    }
  }
  return NodeListener.open(ctx, options, tls, `node:http (${why})`)
}

class UwsListener implements HttpListener {
  private socket: ListenSocket | undefined
  readonly port: number

  private constructor(
    private readonly uws: Uws,
    private readonly app: TemplatedApp,
    socket: ListenSocket,
    readonly name: string,
  ) {
    this.socket = socket
    this.port = uws.us_socket_local_port(socket)
  }

  static async open(uws: Uws, name: string, ctx: HttpContext, options: ListenOptions, tls: TlsFiles | undefined): Promise<UwsListener> {
    const app = buildApp(uws, ctx, tls)
    const socket = await new Promise<ListenSocket | false>((resolve) => app.listen(options.host, options.port, resolve))
    if (socket === false) throw new Error(`cannot listen on ${options.host}:${options.port} (in use or not permitted)`)
    return new UwsListener(uws, app, socket, name)
  }

  stopListening(): void {
    if (this.socket !== undefined) this.uws.us_listen_socket_close(this.socket)
    this.socket = undefined
  }

  close(): void {
    this.stopListening()
    this.app.close()
  }
}

/** Request heads up to 16 KiB, as uWS is configured (http/uws.ts). */
const HEADER_BYTES_MAX = 16 * 1024

class NodeListener implements HttpListener {
  private constructor(
    private readonly server: Server,
    readonly port: number,
    readonly name: string,
  ) {}

  static async open(ctx: HttpContext, options: ListenOptions, tls: TlsFiles | undefined, name: string): Promise<NodeListener> {
    const serverOptions = {
      maxHeaderSize: HEADER_BYTES_MAX,
      // Long-polls and SSE sessions end themselves (--long-poll-timeout-ms, 60 s SSE recycling);
      // node:http's own request timeout would cut them.
      requestTimeout: 0,
      // Keep idle connections as long as a proxy in front is told to (deploy/haproxy.cfg: 75 s).
      keepAliveTimeout: 75_000,
    }
    const onRequest = (req: IncomingMessage, res: ServerResponse): void => handle(new NodeExchange(req, res, ctx.metrics?.response), ctx)
    const server: Server =
      tls === undefined ? createHttpServer(serverOptions, onRequest) : createHttpsServer({ ...serverOptions, cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) }, onRequest)
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => reject(new Error(`cannot listen on ${options.host}:${options.port} (${error.code === 'EADDRINUSE' ? 'in use' : error.message})`)))
      server.listen(options.port, options.host, () => resolve())
    })
    return new NodeListener(server, (server.address() as AddressInfo).port, name)
  }

  stopListening(): void {
    this.server.close()
  }

  close(): void {
    this.server.close()
    this.server.closeAllConnections()
  }
}

/** The TLS files, checked (readable, a key that matches its certificate); undefined: HTTP. */
function tlsFiles(options: ListenOptions): TlsFiles | undefined {
  const { tlsCertFile: certFile, tlsKeyFile: keyFile } = options
  if (certFile === undefined || keyFile === undefined) return undefined
  try {
    createSecureContext({ cert: readFileSync(certFile), key: readFileSync(keyFile) })
  } catch (error) {
    throw new Error(`TLS: cannot use --tls-cert ${certFile} with --tls-key ${keyFile}: ${(error as Error).message}`)
  }
  return { certFile, keyFile }
}
