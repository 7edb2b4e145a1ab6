// server.ts — the library entry point: createServer(options) puts a server together in
// named steps, each done by the room it belongs to (storage/, streams/, subscriptions/,
// cluster/, http/), and gives tests and embedders listen()/url/close().

import { DEFAULTS, type ServerConfig, validateConfig } from './config.js'
import { Authenticator } from './auth/auth.js'
import { Forwarding, forwardTo } from './cluster/forwarding.js'
import { ShardReplica } from './cluster/replica.js'
import { StreamFollow, otherShards } from './cluster/stream-follow.js'
import { StreamWatchHub } from './cluster/stream-watch.js'
import { HttpContext } from './http/context.js'
import { type HttpListener, openListener } from './http/listener.js'
import { type IoChoice, selectIo } from './io/select.js'
import type { Io } from './io/types.js'
import { type MetricSources, ServerMetrics } from './metrics/metrics.js'
import { DataDirLock } from './storage/data-dir-lock.js'
import type { DurableStorage, RecoveryReport } from './storage/durable.js'
import { type OpenedStorage, type StorageSettings, openStorage } from './storage/open.js'
import { installSnapshot } from './storage/snapshot-install.js'
import { Engine } from './streams/engine.js'
import { recoverEngine } from './streams/recovery.js'
import type { SubscriptionManager } from './subscriptions/manager.js'
import { type Subscriptions, setUpSubscriptions } from './subscriptions/setup.js'
import { configureLog, log } from './util/log.js'

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
  /** A replica that must stop leading (default: the process exits with status 75 and its
   * supervisor starts it again, as a follower). */
  readonly onStepDown?: (reason: string) => void
}

/** Exit status of a replica that stopped leading: EX_TEMPFAIL, "start me again". */
export const STEP_DOWN_EXIT_CODE = 75

export function createServer(options: Partial<ServerConfig> = {}, dependencies: ServerDependencies = {}): RingstreamServer {
  const config: ServerConfig = { ...DEFAULTS, ...options }
  validateConfig(config)
  configureLog(config.logFormat, config.logLevel)
  return new Server(config, dependencies)
}

class Server implements RingstreamServer {
  private readonly io: IoChoice | undefined
  private readonly opened: OpenedStorage
  private readonly engine: Engine
  private readonly ctx: HttpContext
  private subscriptions: Subscriptions | undefined
  private http: HttpListener | undefined
  private lock: DataDirLock | undefined
  private replica: ShardReplica | undefined
  /** The other shards of a cluster (--cluster-peers), each as its replicas' URLs; checked at
   * construction: a node missing from its peers, or in two shards, refuses to start. */
  private readonly otherShards: string[][]
  recovery: RecoveryReport | undefined

  constructor(
    readonly config: ServerConfig,
    private readonly dependencies: ServerDependencies,
  ) {
    this.io = chooseIo(config, dependencies)
    const metrics = config.metrics ? new ServerMetrics(this.metricSources()) : undefined
    this.opened = openStorage(this.io?.io, storageSettings(config, metrics), this.simulated)
    this.engine = new Engine({ storage: this.opened.storage, defaultDurability: config.durability, expirySweepMs: config.expirySweepMs })
    this.ctx = new HttpContext(this.engine, config)
    this.ctx.metrics = metrics
    this.ctx.auth = Authenticator.load(config.authTokensFile, config.authJwks)
    this.otherShards = config.clusterPeers === undefined ? [] : otherShards(config.clusterPeers, config.nodeUrl!)
    if (config.clusterUrl !== undefined) {
      this.ctx.cluster = new Forwarding({
        clusterUrl: config.clusterUrl,
        nodeUrl: () => config.nodeUrl ?? this.url,
        controls: this.engine.controls,
        bodyBytesMax: config.appendBytesMax,
        streamPathBytesMax: config.streamPathBytesMax,
        engine: this.engine,
        shards: () => this.otherShards,
      })
    }
  }

  get port(): number {
    return this.http?.port ?? this.config.port
  }

  get url(): string {
    const { host, tlsCertFile } = this.config
    return `${tlsCertFile === undefined ? 'http' : 'https'}://${host.includes(':') ? `[${host}]` : host}:${this.port}`
  }

  /** The simulator is its own world: no process lock, its own registry store and keys. */
  private get simulated(): boolean {
    return this.dependencies.io !== undefined
  }

  describe(): string {
    const { config, lock, opened } = this
    const where = opened.durable === undefined ? '' : ` data-dir=${config.dataDir}${lock === undefined ? '' : ` lock=${lock.kind === 'kernel' ? 'flock' : 'pid-file'}`}`
    return `storage=${opened.storage.kind} durability=${config.durability}${where} io=${this.io === undefined ? 'none' : this.io.description} http=${this.http?.name ?? ''}`
  }

  async listen(): Promise<void> {
    const { config, engine, ctx, opened } = this
    if (opened.durable !== undefined && !this.simulated) this.lock = DataDirLock.acquire(config.dataDir)
    // Subscriptions hear of every stream change from recovery on: set up before it.
    this.subscriptions = setUpSubscriptions({
      engine,
      keysDir: opened.durable === undefined || this.simulated ? undefined : config.dataDir,
      signingKeyFile: config.webhookSigningKeyFile,
      webhooksEnabled: config.webhooks,
      // Behind a proxy, callbacks come back through it (to the node it sends the id to).
      baseUrl: () => config.publicUrl ?? config.clusterUrl ?? this.url,
      streamPathBytesMax: config.streamPathBytesMax,
      subscriptionsMax: config.subscriptionsMax,
      linksMax: config.subscriptionLinksMax,
      wakeStreamsMax: config.wakeStreamsMax,
      deliveriesMax: config.webhookDeliveriesMax,
      webhookTimeoutMs: config.webhookTimeoutMs,
    })
    ctx.subscriptions = this.subscriptions.manager
    if (config.clusterUrl !== undefined) this.followCluster(config.clusterUrl, this.subscriptions.manager)
    // Listening during recovery: /healthz and /readyz (503) answer, streams get 503.
    const http = await openListener(ctx, config)
    this.http = http
    const replicated = config.replicas > 1 && opened.durable !== undefined
    if (replicated && installSnapshot(config.dataDir)) log.info({}, `ringstream: installed the snapshot received from the shard's leader`)
    if (opened.durable !== undefined) {
      try {
        this.recovery = await recoverEngine(engine, opened.durable, config.residentStreamsMax, replicated)
      } catch (error) {
        http.stopListening()
        throw error
      }
    }
    if (replicated) {
      // Subscriptions run on the leader only: they write control records of their own.
      await this.replicate(opened.durable!)
      ctx.ready = true
      return
    }
    await this.subscriptions.manager.start()
    ctx.ready = true
  }

  /** Cluster-wide subscriptions: this node's streams are watched by the other nodes'
   * subscriptions, and (given --cluster-peers) its subscriptions watch theirs. */
  private followCluster(clusterUrl: string, manager: SubscriptionManager): void {
    const { config, engine, ctx } = this
    const hub = new StreamWatchHub(engine, engine.observer)
    engine.observer = hub
    ctx.watches = hub
    if (config.clusterPeers === undefined) return
    manager.remote = new StreamFollow({ clusterUrl, shards: () => this.otherShards, servesHere: (path) => ctx.cluster?.servesHere(path) ?? true })
  }

  /** Joins this node's shard: it serves (itself, or through its leader) once it knows who leads. */
  private async replicate(durable: DurableStorage): Promise<void> {
    const { config, engine, ctx } = this
    const nodeUrl = (): string => config.nodeUrl ?? this.url
    const replica = new ShardReplica({
      etcd: config.etcd!,
      clusterName: config.clusterName,
      shard: config.shard,
      nodeId: config.nodeId!,
      replicas: config.replicas,
      leaseTtlMs: config.leaseTtlMs,
      dataDir: config.dataDir,
      replicationListen: config.replicationListen ?? `${config.host.includes(':') ? `[${config.host}]` : config.host}:0`,
      replicationAdvertise: config.replicationAdvertise,
      proxyAdmin: config.proxyAdmin,
      proxyBackend: config.proxyBackend,
      storage: durable,
      engine,
      nodeUrl,
      forward: (x, url) => forwardTo(x, url, config.appendBytesMax, nodeUrl()),
      leading: () => this.subscriptions?.manager.start(),
      stepDown: (reason) => {
        if (this.dependencies.onStepDown !== undefined) return this.dependencies.onStepDown(reason)
        // The log line is written; a moment for it to reach its destination.
        setTimeout(() => process.exit(STEP_DOWN_EXIT_CODE), 50)
      },
    })
    this.replica = replica
    ctx.shard = replica
    await replica.start()
  }

  reloadAuth(): void {
    const auth = this.ctx.auth
    if (auth === undefined) return
    try {
      const tokens = auth.reload()
      log.info({ tokens }, `ringstream: reloaded authentication (${tokens} tokens)`)
    } catch (error) {
      log.error({ err: error }, `ringstream: kept the previous tokens: ${(error as Error).message}`)
    }
  }

  async checkpoint(): Promise<void> {
    await this.opened.durable?.checkpoint()
  }

  async close(): Promise<void> {
    this.http?.stopListening()
    for (const live of [...this.ctx.live]) live.shutdown()
    this.subscriptions?.manager.stop()
    this.subscriptions?.deliveries.stop()
    await this.replica?.close()
    this.http?.close()
    await this.engine.close()
    await this.io?.release()
    this.lock?.release()
    this.lock = undefined
  }

  /** What GET /metrics reports, read at scrape time (by when everything exists). */
  private metricSources(): MetricSources {
    return {
      residentStreams: () => this.engine.registry.size,
      liveReads: () => liveReads(this.ctx),
      readCounts: () => this.opened.durable?.readCounts,
      diskFull: () => this.opened.durable?.diskFull ?? false,
      recoveryMs: () => this.recovery?.ms,
      subscriptions: () => {
        if (this.subscriptions === undefined) return undefined
        const { manager, deliveries } = this.subscriptions
        return { subscriptions: manager.size, wakes: manager.wakes, webhookAttempts: deliveries.attempts, webhookFailures: deliveries.failures, webhooksInFlight: deliveries.inFlightCount }
      },
    }
  }
}

/** The I/O backend durable storage runs on: none in memory mode (no disk, so no ring), the
 * simulator when a test passes it, else uring or node:fs as --io decides. */
function chooseIo(config: ServerConfig, dependencies: ServerDependencies): IoChoice | undefined {
  if (config.durability === 'memory') return undefined
  const io = dependencies.io
  if (io !== undefined) return { io, description: io.name, release: async () => {} }
  return selectIo(config.io)
}

function storageSettings(config: ServerConfig, metrics: ServerMetrics | undefined): StorageSettings {
  return {
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
    checkpointAfterReplayRecords: config.checkpointAfterReplayRecords,
    diskReserveBytes: config.diskReserveBytes,
    appendBytesMax: config.appendBytesMax,
    onWalBatch: metrics?.walBatch,
  }
}

function liveReads(ctx: HttpContext): { sse: number; longPoll: number } {
  let sse = 0
  for (const live of ctx.live) if (live.kind === 'sse') sse++
  return { sse, longPoll: ctx.live.size - sse }
}
