// server.ts — the library entry point: createServer(options) wires storage, the stream
// engine and the uWS application, and gives tests and embedders listen()/url/close().

import { readFileSync } from 'node:fs'
import { statfs } from 'node:fs/promises'
import { createSecureContext } from 'node:tls'
import { DEFAULTS, type ServerConfig, validateConfig } from './config.js'
import { HttpContext } from './http/context.js'
import { type TlsFiles, buildApp } from './http/app.js'
import { type ListenSocket, type TemplatedApp, type Uws, loadUws } from './http/uws.js'
import { selectIo } from './io/select.js'
import type { Io } from './io/types.js'
import { DurableStorage, type RecoveryReport } from './storage/durable.js'
import { DataDirLock } from './data-dir-lock.js'
import { MemoryStorage } from './storage/memory.js'
import { LmdbRegistry } from './storage/registry-lmdb.js'
import { IoRegistry } from './storage/registry-store.js'
import { ServerMetrics } from './metrics/metrics.js'
import { configureLog, log } from './util/log.js'
import { Authenticator } from './auth/auth.js'
import { Engine } from './streams/engine.js'
import { recoveryTarget } from './streams/recovery.js'
import { WebhookDeliveries } from './subscriptions/delivery.js'
import { SubscriptionKeys } from './subscriptions/keys.js'
import { SubscriptionManager } from './subscriptions/manager.js'
import { ForwardTable } from './cluster/forwards.js'

export interface RingstreamServer {
  /** Recovers durable state, then starts listening; resolves once the port is bound. */
  listen(): Promise<void>
  /** Base URL, e.g. http://127.0.0.1:4437 (valid after listen()). */
  readonly url: string
  readonly port: number
  readonly config: Readonly<ServerConfig>
  /** Storage mode and I/O backend, as logged at startup. */
  describe(): string
  /** What recovery found at startup (durable modes, after listen()). */
  readonly recovery: RecoveryReport | undefined
  /** Writes a checkpoint now (durable modes; a no-op in memory mode). */
  checkpoint(): Promise<void>
  /** Reads --auth-tokens again (SIGHUP); a bad file keeps the tokens in force. */
  reloadAuth(): void
  /** Stops accepting, ends live reads, closes connections, checkpoints and closes storage. */
  close(): Promise<void>
}

export interface ServerDependencies {
  /** The I/O backend for durable storage (tests pass the simulator). */
  readonly io?: Io
}

export function createServer(options: Partial<ServerConfig> = {}, dependencies: ServerDependencies = {}): RingstreamServer {
  const config: ServerConfig = { ...DEFAULTS, ...options }
  validateConfig(config)
  configureLog(config.logFormat, config.logLevel)
  // Memory mode touches no disk, so it opens no ring either.
  const choice =
    config.durability === 'memory'
      ? undefined
      : dependencies.io !== undefined
        ? { io: dependencies.io, description: dependencies.io.name, release: async () => {} }
        : selectIo(config.io)
  // Its sources are read at scrape time, by when everything below exists.
  const metrics: ServerMetrics | undefined = config.metrics
    ? new ServerMetrics({
        residentStreams: (): number => engine.registry.size,
        liveReads: (): { sse: number; longPoll: number } => liveReads(ctx),
        readCounts: (): { readonly hits: number; readonly misses: number } | undefined => durable?.readCounts,
        diskFull: (): boolean => durable?.diskFull ?? false,
        recoveryMs: (): number | undefined => recovery?.ms,
        subscriptions: () =>
          subscriptions === undefined || deliveries === undefined
            ? undefined
            : { subscriptions: subscriptions.size, wakes: subscriptions.wakes, webhookAttempts: deliveries.attempts, webhookFailures: deliveries.failures, webhooksInFlight: deliveries.inFlightCount },
      })
    : undefined
  const durable: DurableStorage | undefined =
    choice === undefined
      ? undefined
      : new DurableStorage({
          io: choice.io,
          dataDir: config.dataDir,
          walSegmentBytes: config.walSegmentBytes,
          checkpointIntervalMs: config.checkpointIntervalMs,
          checkpointWalBytes: config.checkpointWalBytes,
          openFilesMax: config.openFilesMax,
          readCacheBytes: config.readCacheBytes,
          salvage: config.salvage,
          segmentBytes: config.segmentBytes,
          inlineBytesMax: config.inlineBytesMax,
          checkpointChangedStreams: config.checkpointChangedStreams,
          diskReserveBytes: config.diskReserveBytes,
          onWalBatch: metrics?.walBatch,
          // Real disks are asked (statfs); the simulator fails writes with ENOSPC itself.
          freeBytes: dependencies.io === undefined ? async () => freeBytesOf(config.dataDir) : undefined,
          // lmdb writes real files; the simulator's world needs a store that goes through it.
          openRegistry: async (dir) => {
            if (dependencies.io === undefined) return LmdbRegistry.open(dir)
            await dependencies.io.mkdirp(dir)
            return IoRegistry.open(dependencies.io, dir)
          },
        })
  const storage = durable ?? new MemoryStorage()
  const engine = new Engine({
    storage,
    defaultDurability: config.durability,
    readBytesMax: config.readBytesMax,
    expirySweepMs: config.expirySweepMs,
  })
  const ctx = new HttpContext(engine, config)
  if (config.clusterUrl !== undefined) {
    const forwards = new ForwardTable(engine.controls)
    engine.controls.receivers.push(forwards)
    const clusterUrl = config.clusterUrl
    ctx.cluster = {
      clusterUrl,
      forwards,
      forwardTimeoutMs: 5000,
      get nodeUrl() {
        return config.nodeUrl ?? url()
      },
    }
  }
  ctx.metrics = metrics
  ctx.auth = Authenticator.load(config.authTokensFile, config.authJwks)
  let uws: Uws | undefined
  let uwsName = ''
  let app: TemplatedApp | undefined
  let socket: ListenSocket | undefined
  let port = config.port
  let recovery: RecoveryReport | undefined
  let lock: DataDirLock | undefined
  let subscriptions: SubscriptionManager | undefined
  let deliveries: WebhookDeliveries | undefined
  const url = (): string => `${config.tlsCertFile === undefined ? 'http' : 'https'}://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`
  /** Subscriptions hear of every stream change from recovery on: made before it. */
  const startSubscriptions = (): SubscriptionManager => {
    const keys = SubscriptionKeys.load(durable === undefined || dependencies.io !== undefined ? undefined : config.dataDir, config.webhookSigningKeyFile)
    const manager = new SubscriptionManager({
      engine,
      keys,
      webhooksEnabled: config.webhooks,
      baseUrl: () => config.publicUrl ?? url(),
      streamPathBytesMax: config.streamPathBytesMax,
      subscriptionsMax: config.subscriptionsMax,
      linksMax: config.subscriptionLinksMax,
      wakeStreamsMax: config.wakeStreamsMax,
    })
    deliveries = new WebhookDeliveries({ manager, keys, inFlightMax: config.webhookDeliveriesMax, timeoutMs: config.webhookTimeoutMs })
    manager.delivery = deliveries
    engine.observer = manager
    engine.controls.receivers.push(manager)
    ctx.subscriptions = manager
    return manager
  }

  return {
    config,
    get port() {
      return port
    },
    get url() {
      return url()
    },
    get recovery() {
      return recovery
    },
    describe() {
      const where = durable === undefined ? '' : ` data-dir=${config.dataDir}${lock === undefined ? '' : ` lock=${lock.kind === 'kernel' ? 'flock' : 'pid-file'}`}`
      return `storage=${storage.kind} durability=${config.durability}${where} io=${choice === undefined ? 'none' : choice.description} http=${uwsName}`
    },
    async listen() {
      const loaded = await loadUws()
      uws = loaded.uws
      uwsName = loaded.name
      // The simulator is its own world; only real directories need the process lock.
      if (durable !== undefined && dependencies.io === undefined) lock = DataDirLock.acquire(config.dataDir)
      subscriptions = startSubscriptions()
      // Listening during recovery: /healthz and /readyz (503) answer, streams get 503.
      app = buildApp(uws, ctx, tlsFiles(config))
      const bound = await new Promise<ListenSocket | false>((resolve) => app!.listen(config.host, config.port, resolve))
      if (bound === false) throw new Error(`cannot listen on ${config.host}:${config.port} (in use or not permitted)`)
      socket = bound
      port = uws.us_socket_local_port(bound)
      if (durable !== undefined) {
        engine.registry.expiryEnabled = false
        try {
          recovery = await durable.recover(recoveryTarget(engine, config.residentStreamsMax))
        } catch (error) {
          uws.us_listen_socket_close(bound)
          socket = undefined
          throw error
        }
        engine.registry.expiryEnabled = true
        engine.registry.sweep()
      }
      await subscriptions.start()
      ctx.ready = true
    },
    reloadAuth() {
      if (ctx.auth === undefined) return
      try {
        const tokens = ctx.auth.reload()
        log.info({ tokens }, `ringstream: reloaded authentication (${tokens} tokens)`)
      } catch (error) {
        log.error({ err: error }, `ringstream: kept the previous tokens: ${(error as Error).message}`)
      }
    },
    async checkpoint() {
      await durable?.checkpoint()
    },
    async close() {
      if (socket !== undefined && uws !== undefined) uws.us_listen_socket_close(socket)
      socket = undefined
      for (const live of [...ctx.live]) live.shutdown()
      subscriptions?.stop()
      deliveries?.stop()
      app?.close()
      await engine.close()
      await choice?.release()
      lock?.release()
      lock = undefined
    },
  }
}

/** Bytes an unprivileged writer may still take on the file system of `dir`. */
async function freeBytesOf(dir: string): Promise<number> {
  const stats = await statfs(dir)
  return stats.bavail * stats.bsize
}

/** The TLS files, checked here (readable, a key that matches its certificate): uWS only
 * says that listening failed. */
function tlsFiles(config: ServerConfig): TlsFiles | undefined {
  const { tlsCertFile: certFile, tlsKeyFile: keyFile } = config
  if (certFile === undefined || keyFile === undefined) return undefined
  try {
    createSecureContext({ cert: readFileSync(certFile), key: readFileSync(keyFile) })
  } catch (error) {
    throw new Error(`TLS: cannot use --tls-cert ${certFile} with --tls-key ${keyFile}: ${(error as Error).message}`)
  }
  return { certFile, keyFile }
}

function liveReads(ctx: HttpContext): { sse: number; longPoll: number } {
  let sse = 0
  for (const live of ctx.live) if (live.kind === 'sse') sse++
  return { sse, longPoll: ctx.live.size - sse }
}
