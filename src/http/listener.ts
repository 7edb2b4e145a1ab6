// http/listener.ts — the HTTP side of a running server: loads uWebSockets.js, builds the
// app on the shared context (http/app.ts), binds the port (HTTPS when given a certificate
// and key, checked here first: uWS only says that listening failed) and lets it go again.

import { readFileSync } from 'node:fs'
import { createSecureContext } from 'node:tls'
import { type TlsFiles, buildApp } from './app.js'
import type { HttpContext } from './context.js'
import { type ListenSocket, type TemplatedApp, type Uws, loadUws } from './uws.js'

export interface ListenOptions {
  readonly host: string
  /** 0: an ephemeral port (see HttpListener.port). */
  readonly port: number
  readonly tlsCertFile: string | undefined
  readonly tlsKeyFile: string | undefined
}

export class HttpListener {
  private socket: ListenSocket | undefined

  private constructor(
    private readonly uws: Uws,
    private readonly app: TemplatedApp,
    socket: ListenSocket,
    /** The uWS package that loaded, for the startup line. */
    readonly name: string,
  ) {
    this.socket = socket
    this.port = uws.us_socket_local_port(socket)
  }

  /** The bound port. */
  readonly port: number

  /** Checks the TLS files, loads uWS, and listens with `ctx`'s handlers. */
  static async open(ctx: HttpContext, options: ListenOptions): Promise<HttpListener> {
    const tls = tlsFiles(options)
    const { uws, name } = await loadUws()
    const app = buildApp(uws, ctx, tls)
    const socket = await new Promise<ListenSocket | false>((resolve) => app.listen(options.host, options.port, resolve))
    if (socket === false) throw new Error(`cannot listen on ${options.host}:${options.port} (in use or not permitted)`)
    return new HttpListener(uws, app, socket, name)
  }

  /** Stops accepting new connections; open ones stay until close(). */
  stopListening(): void {
    if (this.socket !== undefined) this.uws.us_listen_socket_close(this.socket)
    this.socket = undefined
  }

  /** Stops accepting and closes every connection. */
  close(): void {
    this.stopListening()
    this.app.close()
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
