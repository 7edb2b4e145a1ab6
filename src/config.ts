// config.ts — every server option and limit in one place, each with why it is what it is.
// CLI flags and RINGSTREAM_* environment variables resolve into this (see cli.ts).

import { readFileSync } from 'node:fs'
import type { Durability } from './protocol/headers.js'
import { SEGMENT_BYTES_DEFAULT } from './storage/segments/segments.js'
import { INLINE_BYTES_DEFAULT } from './storage/segments/file-log.js'
import type { IoBackend } from './io/select.js'
import { LOG_LEVELS, type LogFormat, type LogLevel } from './util/log.js'

export type { IoBackend }

/** --http: auto takes uWebSockets.js when it loads and node:http otherwise. */
export type HttpBackend = 'auto' | 'uws' | 'node'

export interface ServerConfig {
  /** TCP port; 4437 is the protocol's registered default (PROTOCOL §11.1). 0 = ephemeral. */
  port: number
  /** Loopback by default so a first run never exposes data to the network. */
  host: string
  /** Where durable storage keeps its files. */
  dataDir: string
  /** Server-wide durability class; a stream may override it with Stream-Durability. */
  durability: Durability
  /** Long-poll wait before answering 204; 30 s stays under common proxy idle timeouts. */
  longPollTimeoutMs: number
  /** I/O backend request; meaningful once the io_uring addon lands. */
  io: IoBackend
  /** HTTP backend: uWebSockets.js (fastest) when it loads, node:http where it does not. */
  http: HttpBackend
  /** Largest append body; bounds the memory one request can pin. */
  appendBytesMax: number
  /** Largest catch-up or long-poll response body (--read-bytes-max): a client that makes
   * one request and stops (the official clients with live: false) gets a stream of up to
   * this size whole; past it, responses end at a message boundary and clients page with
   * Stream-Next-Offset. Sent in pieces of readChunkBytes, so it bounds no memory. */
  readBytesMax: number
  /** Bytes read and sent at a time: a larger response goes out piece by piece as the
   * socket takes them (one piece in memory per response); an SSE data event holds at most
   * this much. */
  readChunkBytes: number
  /** Longest stream path in bytes; paths appear in every URL and index. */
  streamPathBytesMax: number
  /** Longest Producer-Id and Stream-Seq values; they are kept per stream in memory. */
  headerValueBytesMax: number
  /** SSE connections are recycled after this so CDNs can collapse clients (PROTOCOL §8.2). */
  sseConnectionMs: number
  /** Comment frame cadence on idle SSE connections so proxies do not cut them. */
  sseKeepAliveMs: number
  /** Responses at least this large are gzipped when the client accepts it. */
  gzipMinBytes: number
  /** How often expired streams are swept; expiry is also checked on every access. */
  expirySweepMs: number
  /** WAL segment size; preallocated and zero-filled so datasync stays cheap. Undefined:
   * scaled to the data directory's disk (storage/disk-budget.ts; 64 MiB from 512 MiB on). */
  walSegmentBytes: number | undefined
  /** Free space the WAL leaves when it takes a segment: what a checkpoint needs to write on
   * a full disk (pending data, index pages, registry pages) before it frees WAL segments.
   * Undefined: one WAL segment. */
  diskReserveBytes: number | undefined
  /** PEM certificate chain and private key files: HTTPS on the port when both are set. */
  tlsCertFile: string | undefined
  /** GET /metrics and the counting behind it. */
  metrics: boolean
  /** The bearer-token file (auth/tokens.ts); undefined: no authentication. */
  authTokensFile: string | undefined
  /** A JSON Web Key Set file or URL for JWT bearer tokens (auth/jwt.ts). */
  authJwks: string | undefined
  /** Reads may carry the bearer token as ?access_token= (RFC 6750 §2.3), for browsers. */
  authQueryToken: boolean
  /** Log lines as text or JSON, and from which level (util/log.ts). */
  logFormat: LogFormat
  logLevel: LogLevel
  tlsKeyFile: string | undefined
  /** Checkpoint at least this often while anything changed; bounds replay after a crash. */
  checkpointIntervalMs: number
  /** …and whenever this much WAL accumulated since the last checkpoint. Undefined: scaled
   * to the disk (a quarter of it, 2 WAL segments to 256 MiB). */
  checkpointWalBytes: number | undefined
  /** Open stream data files kept; more streams than this cost no descriptors. */
  openFilesMax: number
  /** Recently written stream bytes kept in memory for reads, across all streams; catch-up
   * of recent data is then a view, not a file read. Bounds the memory it may take. */
  readCacheBytes: number
  /** Start despite WAL corruption in the middle, dropping everything from the damage on
   * (and treat damaged registry entries as absent). */
  salvage: boolean
  /** Stream bytes per data segment file (storage/segments/segments.ts); fixed when a data
   * directory is created (the directory's own value wins afterwards). */
  segmentBytes: number
  /** Streams of at most this many bytes keep them in their registry entry instead of a
   * data file (storage/segments/file-log.ts); 0: every stream with bytes has a data file. */
  inlineBytesMax: number
  /** Streams kept in memory when idle; the rest wait in the registry store (~1–2 KiB each
   * in memory, microseconds to load again). */
  residentStreamsMax: number
  /** Checkpoint as soon as this many streams changed: a burst of creates must not hold a
   * million unstored streams in memory until the next timed checkpoint. */
  checkpointChangedStreams: number
  /** A start that replayed at least this many WAL records checkpoints right away: a server
   * killed more often than its checkpoint interval would otherwise replay the whole log
   * since its last checkpoint at every start (seen: 460k records, ~1 s, at each of 100 kills). */
  checkpointAfterReplayRecords: number
  /** Webhook subscriptions (outbound HTTP requests) are off unless asked for; pull-wake
   * subscriptions are always served. */
  webhooks: boolean
  /** The URL clients reach this server at (callback and JWKS URLs in webhook bodies);
   * undefined: the listening address (right for development, wrong behind a proxy). */
  publicUrl: string | undefined
  /** A PEM Ed25519 private key to sign webhooks with; undefined: the data directory's own. */
  webhookSigningKeyFile: string | undefined
  /** Subscriptions a server holds: each is in memory, and glob ones cost a match per append
   * to a stream of their prefix. */
  subscriptionsMax: number
  /** Stream links one subscription holds (~150 bytes each in memory). */
  subscriptionLinksMax: number
  /** Streams one wake lists (webhook body size, stored snapshot); the rest come next wake. */
  wakeStreamsMax: number
  /** Webhook requests in flight at once, across subscriptions. */
  webhookDeliveriesMax: number
  /** One webhook attempt's limit, answer included: a slow receiver holds one slot this long. */
  webhookTimeoutMs: number
  /** Scale-out: the path-hashing proxy all nodes are reached through (deploy/haproxy.cfg);
   * undefined: a single node. */
  clusterUrl: string | undefined
  /** …and this node's own URL as the other nodes reach it (default: the listen address). */
  nodeUrl: string | undefined
  /** …and every node's URL, for subscriptions that see the whole cluster: shards separated
   * by commas, a replicated shard's replicas by `|` (cluster/stream-follow.ts). */
  clusterPeers: string | undefined
  /** Replication (cluster/): etcd's client URLs; undefined: no replication. */
  etcd: readonly string[] | undefined
  /** Names the cluster in etcd's keys: several clusters may share one etcd. */
  clusterName: string
  /** The shard this node is a replica of (the proxy hashes paths to shards). */
  shard: string
  /** This node's id within its shard's cluster: unique, and the same across restarts. */
  nodeId: string | undefined
  /** Replicas of each shard, this node included; an append is acknowledged once a
   * majority (floor(replicas / 2) + 1) has it. 1: no replication. */
  replicas: number
  /** Where followers connect to this node when it leads (host:port; port 0: any free port). */
  replicationListen: string | undefined
  /** …and the address they are told (host:port) when it differs: behind NAT or a proxy. */
  replicationAdvertise: string | undefined
  /** etcd lease TTL: a dead leader's shard fails over about this long after its death;
   * etcd's own floor with default timings is near 2 s. */
  leaseTtlMs: number
  /** HAProxy runtime API addresses (unix socket path or host:port) a new leader points its
   * shard's server at (`set server`): clients keep using the proxy through a failover. */
  proxyAdmin: readonly string[] | undefined
  /** The proxy backend whose servers are the shards (deploy/haproxy.cfg). */
  proxyBackend: string
}

export const DEFAULTS: Readonly<ServerConfig> = {
  port: 4437,
  host: '127.0.0.1',
  dataDir: './data',
  durability: 'fsync',
  longPollTimeoutMs: 30_000,
  io: 'auto',
  http: 'auto',
  appendBytesMax: 16 * 1024 * 1024,
  readBytesMax: 512 * 1024 * 1024,
  readChunkBytes: 1024 * 1024,
  streamPathBytesMax: 1024,
  headerValueBytesMax: 256,
  sseConnectionMs: 60_000,
  sseKeepAliveMs: 15_000,
  gzipMinBytes: 4096,
  expirySweepMs: 1000,
  // The WAL's sizes fit the disk unless given (storage/disk-budget.ts): from 1 GiB on
  // 64 MiB segments, 64 MiB reserve, a checkpoint every 256 MiB of WAL.
  walSegmentBytes: undefined,
  diskReserveBytes: undefined,
  tlsCertFile: undefined,
  metrics: true,
  authTokensFile: undefined,
  authJwks: undefined,
  authQueryToken: false,
  logFormat: 'text',
  logLevel: 'info',
  tlsKeyFile: undefined,
  checkpointIntervalMs: 30_000,
  checkpointWalBytes: undefined,
  openFilesMax: defaultOpenFilesMax(),
  // Enough for readers following the tail (they read what was written moments ago); older
  // bytes come from the page cache at a copy's cost. All of it counts in the server's RSS.
  readCacheBytes: 16 * 1024 * 1024,
  salvage: false,
  segmentBytes: SEGMENT_BYTES_DEFAULT,
  inlineBytesMax: INLINE_BYTES_DEFAULT,
  residentStreamsMax: 10_000,
  checkpointChangedStreams: 20_000,
  checkpointAfterReplayRecords: 10_000,
  webhooks: false,
  publicUrl: undefined,
  webhookSigningKeyFile: undefined,
  subscriptionsMax: 1000,
  subscriptionLinksMax: 100_000,
  wakeStreamsMax: 1000,
  webhookDeliveriesMax: 64,
  webhookTimeoutMs: 10_000,
  clusterUrl: undefined,
  nodeUrl: undefined,
  clusterPeers: undefined,
  etcd: undefined,
  clusterName: 'ringstream',
  shard: '1',
  nodeId: undefined,
  replicas: 1,
  replicationListen: undefined,
  replicationAdvertise: undefined,
  leaseTtlMs: 2000,
  proxyAdmin: undefined,
  proxyBackend: 'nodes',
}

/** Half the process's descriptor limit (the rest is for connections), within [256, 16384]:
 * a busy stream whose data file keeps being closed and reopened costs two syscalls per
 * flush. Linux only; elsewhere the conservative 256. */
function defaultOpenFilesMax(): number {
  let soft = 0
  try {
    const limits = readFileSync('/proc/self/limits', 'utf8')
    soft = Number(/^Max open files\s+(\d+)/m.exec(limits)?.[1] ?? 0)
  } catch {
    // Not Linux: keep the floor.
  }
  return Math.max(256, Math.min(16_384, Math.floor(soft / 2)))
}

/** Asserts how the limits relate; a violation is a configuration error, reported at startup. */
export function validateConfig(config: ServerConfig): void {
  const fail = (message: string): never => {
    throw new Error(`invalid configuration: ${message}`)
  }
  if (!Number.isInteger(config.port) || config.port < 0 || config.port > 65535) fail('port must be 0..65535')
  if (config.longPollTimeoutMs < 1) fail('long-poll timeout must be at least 1 ms')
  if (config.readBytesMax < 1024) fail('readBytesMax must be at least 1 KiB')
  if (config.readChunkBytes < 1024) fail('readChunkBytes must be at least 1 KiB')
  if (config.appendBytesMax < 1) fail('appendBytesMax must be positive')
  if (config.sseKeepAliveMs >= config.sseConnectionMs) fail('SSE keep-alive must be shorter than the SSE connection lifetime')
  if (config.expirySweepMs < 10) fail('expiry sweep interval must be at least 10 ms')
  if (!['memory', 'buffered', 'fsync'].includes(config.durability)) fail('durability must be memory, buffered or fsync')
  if (!['auto', 'uring', 'fs'].includes(config.io)) fail('io must be auto, uring or fs')
  if (!['auto', 'uws', 'node'].includes(config.http)) fail('http must be auto, uws or node')
  // The WAL's sizes are checked when given; scaled ones are right by construction.
  if (config.walSegmentBytes !== undefined && config.walSegmentBytes < 64 * 1024) fail('WAL segments must be at least 64 KiB')
  if (config.diskReserveBytes !== undefined && (!Number.isSafeInteger(config.diskReserveBytes) || config.diskReserveBytes < 0)) fail('the disk reserve must be a non-negative integer')
  if ((config.tlsCertFile === undefined) !== (config.tlsKeyFile === undefined)) fail('TLS needs both --tls-cert and --tls-key')
  if (config.logFormat !== 'text' && config.logFormat !== 'json') fail('the log format must be text or json')
  if (!(LOG_LEVELS as readonly string[]).includes(config.logLevel)) fail(`the log level must be one of ${LOG_LEVELS.join(', ')}`)
  if (config.walSegmentBytes !== undefined && config.walSegmentBytes < config.appendBytesMax) fail('a WAL segment must hold the largest append')
  if (config.openFilesMax < 1) fail('openFilesMax must be at least 1')
  if (config.checkpointIntervalMs < 100) fail('checkpoint interval must be at least 100 ms')
  // Entries over half an lmdb page (inline bytes past ~1.4 KiB, as base64) take overflow
  // pages of their own; past 4 KiB a data file is the better home.
  if (!Number.isInteger(config.inlineBytesMax) || config.inlineBytesMax < 0 || config.inlineBytesMax > 4096) fail('inlineBytesMax must be 0 .. 4096')
  if (config.segmentBytes < 4096 || config.segmentBytes > 2 ** 36) fail('segmentBytes must be 4 KiB .. 64 GiB')
  if (config.residentStreamsMax < 1) fail('residentStreamsMax must be at least 1')
  if (config.checkpointChangedStreams < 1) fail('checkpointChangedStreams must be at least 1')
  if (config.checkpointAfterReplayRecords < 1) fail('checkpointAfterReplayRecords must be at least 1')
  if (config.publicUrl !== undefined && !/^https?:\/\/[^/]+$/.test(config.publicUrl)) fail('the public URL must be http(s)://host[:port] with no path')
  for (const [name, value] of [['cluster URL', config.clusterUrl], ['node URL', config.nodeUrl]] as const) {
    if (value !== undefined && !/^https?:\/\/[^/]+$/.test(value)) fail(`the ${name} must be http(s)://host[:port] with no path`)
  }
  if (config.nodeUrl !== undefined && config.clusterUrl === undefined && config.etcd === undefined) fail('--node-url needs --cluster-url or --etcd')
  if (config.clusterPeers !== undefined) {
    if (config.clusterUrl === undefined || config.nodeUrl === undefined) fail('--cluster-peers needs --cluster-url and --node-url (to find this node among them)')
    for (const url of config.clusterPeers.split(/[,|]/)) if (!/^https?:\/\/[^/]+\/?$/.test(url.trim())) fail(`--cluster-peers: "${url}" is not http(s)://host[:port]`)
  }
  if (config.subscriptionsMax < 1 || config.subscriptionLinksMax < 1 || config.wakeStreamsMax < 1) fail('subscription limits must be at least 1')
  if (config.webhookDeliveriesMax < 1 || config.webhookTimeoutMs < 100) fail('webhook deliveries need at least 1 slot and a timeout of at least 100 ms')
  if (!Number.isInteger(config.replicas) || config.replicas < 1 || config.replicas > 9) fail('--replicas must be 1 .. 9')
  if (config.replicas > 1) {
    if (config.etcd === undefined || config.etcd.length === 0) fail('--replicas above 1 needs --etcd (leadership and fencing come from etcd)')
    if (config.nodeId === undefined || !/^[A-Za-z0-9._-]{1,64}$/.test(config.nodeId)) fail('--replicas above 1 needs --node-id: 1-64 letters, digits, ".", "_" or "-", the same across restarts')
    if (config.durability === 'memory') fail('replication needs a durable class (--durability buffered or fsync): memory-class streams live on the leader only')
    if (config.leaseTtlMs < 1000 || config.leaseTtlMs > 60_000) fail('--lease-ttl-ms must be 1000 .. 60000 (etcd leases are whole seconds)')
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(config.shard) || !/^[A-Za-z0-9._-]{1,64}$/.test(config.clusterName)) fail('--shard and --cluster-name: 1-64 letters, digits, ".", "_" or "-"')
    if (config.replicationListen !== undefined && !/^[^\s]+:\d+$/.test(config.replicationListen)) fail('--replication-listen must be host:port')
    if (config.replicationAdvertise !== undefined && !/^[^\s]+:\d+$/.test(config.replicationAdvertise)) fail('--replication-advertise must be host:port')
  }
  for (const url of config.etcd ?? []) if (!/^https?:\/\/[^/]+$/.test(url)) fail(`etcd URLs must be http(s)://host:port with no path, got "${url}"`)
}
