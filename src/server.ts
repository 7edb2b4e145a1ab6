// server.ts — the library entry point: createServer(options) wires storage, the stream
// engine and the uWS application, and gives tests and embedders listen()/url/close().

import { DEFAULTS, type ServerConfig, validateConfig } from './config.js'
import { HttpContext } from './http/context.js'
import { buildApp } from './http/app.js'
import { type ListenSocket, type TemplatedApp, type Uws, loadUws } from './http/uws.js'
import { MemoryStorage } from './storage/memory.js'
import type { Storage } from './storage/types.js'
import { Engine } from './streams/engine.js'

export interface RingstreamServer {
  /** Starts listening; resolves once the port is bound. */
  listen(): Promise<void>
  /** Base URL, e.g. http://127.0.0.1:4437 (valid after listen()). */
  readonly url: string
  readonly port: number
  readonly config: Readonly<ServerConfig>
  /** Storage mode and I/O backend, as logged at startup. */
  describe(): string
  /** Stops accepting, ends live reads, closes connections and storage. */
  close(): Promise<void>
}

function openStorage(config: ServerConfig): Storage {
  if (config.durability !== 'memory') {
    throw new Error(`durability "${config.durability}" needs the durable storage engine, which this build does not have yet; use --durability memory`)
  }
  return new MemoryStorage()
}

export function createServer(options: Partial<ServerConfig> = {}): RingstreamServer {
  const config: ServerConfig = { ...DEFAULTS, ...options }
  validateConfig(config)
  const storage = openStorage(config)
  const engine = new Engine({
    storage,
    defaultDurability: config.durability,
    readBytesMax: config.readBytesMax,
    expirySweepMs: config.expirySweepMs,
  })
  const ctx = new HttpContext(engine, config)
  let uws: Uws | undefined
  let uwsName = ''
  let app: TemplatedApp | undefined
  let socket: ListenSocket | undefined
  let port = config.port

  return {
    config,
    get port() {
      return port
    },
    get url() {
      return `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`
    },
    describe() {
      return `storage=${storage.kind} durability=${config.durability} io=node-fs (requested ${config.io}) http=${uwsName}`
    },
    async listen() {
      const loaded = await loadUws()
      uws = loaded.uws
      uwsName = loaded.name
      app = buildApp(uws, ctx)
      const bound = await new Promise<ListenSocket | false>((resolve) => app!.listen(config.host, config.port, resolve))
      if (bound === false) throw new Error(`cannot listen on ${config.host}:${config.port} (in use or not permitted)`)
      socket = bound
      port = uws.us_socket_local_port(bound)
    },
    async close() {
      if (socket !== undefined && uws !== undefined) uws.us_listen_socket_close(socket)
      socket = undefined
      for (const live of [...ctx.live]) live.shutdown()
      app?.close()
      await engine.close()
    },
  }
}
