// cli.ts — the `ringstream` command: flags and RINGSTREAM_* environment variables into a
// ServerConfig, one startup line, graceful shutdown on SIGTERM/SIGINT.

import { parseArgs } from 'node:util'
import { DEFAULTS, type HttpBackend, type IoBackend, type ServerConfig } from './config.js'
import type { Durability } from './protocol/headers.js'
import { createServer } from './server.js'
import { type LogFormat, type LogLevel, log } from './util/log.js'

const HELP = `ringstream — a Durable Streams server (https://github.com/durable-streams/durable-streams)

Usage: ringstream [options]
       ringstream rebalance --proxy <url> --proxy-admin <socket> --nodes <name=url,…> (--add <name> | --remove <name>)
         (moves streams when a node joins or leaves a cluster: docs/scaling.md)

Options (each also settable as an environment variable):
  --port <n>                  RINGSTREAM_PORT                 listen port (default ${DEFAULTS.port})
  --host <addr>               RINGSTREAM_HOST                 listen address (default ${DEFAULTS.host})
  --data-dir <dir>            RINGSTREAM_DATA_DIR             data directory (default ${DEFAULTS.dataDir})
  --durability <class>        RINGSTREAM_DURABILITY           memory | buffered | fsync (default ${DEFAULTS.durability}); a stream
                                                              may choose its own with the Stream-Durability header
  --long-poll-timeout-ms <n>  RINGSTREAM_LONG_POLL_TIMEOUT_MS long-poll wait before 204 (default ${DEFAULTS.longPollTimeoutMs})
  --io <backend>              RINGSTREAM_IO                   auto | uring | fs (default ${DEFAULTS.io}: uring when it loads)
  --http <backend>            RINGSTREAM_HTTP                 auto | uws | node (default ${DEFAULTS.http}: uWebSockets.js when it loads, else node:http)
  --checkpoint-interval-ms <n> RINGSTREAM_CHECKPOINT_INTERVAL_MS checkpoint at least this often (default ${DEFAULTS.checkpointIntervalMs})
  --checkpoint-wal-bytes <n>  RINGSTREAM_CHECKPOINT_WAL_BYTES and after this much WAL (default: scaled to the disk: a quarter of it,
                                                              2 WAL segments to 256 MiB)
  --read-cache-bytes <n>      RINGSTREAM_READ_CACHE_BYTES     recently written bytes kept in memory for reads (default ${DEFAULTS.readCacheBytes})
  --segment-bytes <n>         RINGSTREAM_SEGMENT_BYTES        stream bytes per data segment file, for a new data directory (default ${DEFAULTS.segmentBytes})
  --inline-bytes <n>          RINGSTREAM_INLINE_BYTES         streams of at most n bytes keep them in the registry, no data file; 0: never (default ${DEFAULTS.inlineBytesMax})
  --read-bytes-max <n>        RINGSTREAM_READ_BYTES_MAX       largest catch-up or long-poll response, sent in 1 MiB pieces (default ${DEFAULTS.readBytesMax})
  --wal-segment-bytes <n>     RINGSTREAM_WAL_SEGMENT_BYTES    bytes per preallocated WAL segment (default: scaled to the disk: an eighth
                                                              of it, 16-64 MiB; 64 MiB from 512 MiB on)
  --disk-reserve-bytes <n>    RINGSTREAM_DISK_RESERVE_BYTES   free space the WAL never takes (default: scaled to the disk: one WAL segment)
  --log-format <text|json>    RINGSTREAM_LOG_FORMAT           log lines as text or JSON (time, level, message, fields) (default ${DEFAULTS.logFormat})
  --log-level <level>         RINGSTREAM_LOG_LEVEL            trace | debug | info | warn | error | fatal | silent (default ${DEFAULTS.logLevel})
  --auth-tokens <file>        RINGSTREAM_AUTH_TOKENS          bearer tokens, one per line: TOKEN read|write PATH-PREFIX (reloaded on SIGHUP)
  --auth-jwks <file|url>      RINGSTREAM_AUTH_JWKS            JWT bearer tokens verified with this key set; claims ds_read / ds_write list path prefixes
  --auth-query-token <on|off> RINGSTREAM_AUTH_QUERY_TOKEN     reads (GET, HEAD) may carry the token as ?access_token= instead of the
                                                              header: browsers then skip a CORS preflight per live read (default off)
  --metrics <on|off>          RINGSTREAM_METRICS              GET /metrics in the Prometheus text format (default on)
  --tls-cert <file>           RINGSTREAM_TLS_CERT             PEM certificate (chain): serve HTTPS on --port, with --tls-key
  --tls-key <file>            RINGSTREAM_TLS_KEY              PEM private key of that certificate
  --webhooks                  RINGSTREAM_WEBHOOKS=1           serve webhook subscriptions (outbound requests); pull-wake is always on
  --public-url <url>          RINGSTREAM_PUBLIC_URL           http(s)://host[:port] clients reach this server at (webhook callback URLs)
  --webhook-signing-key <f>   RINGSTREAM_WEBHOOK_SIGNING_KEY  PEM Ed25519 key for webhook signatures (default: made once in the data dir)
  --cluster-url <url>         RINGSTREAM_CLUSTER_URL          scale-out: the path-hashing proxy every node is reached through
  --node-url <url>            RINGSTREAM_NODE_URL             …and this node's URL as the others reach it (default: the listen address)
  --cluster-peers <urls>      RINGSTREAM_CLUSTER_PEERS        …and every node's URL (this one's too), so subscriptions see the whole cluster:
                                                              comma-separated, a replicated shard's replicas joined by | (a|b|c,d|e|f)
  --etcd <urls>               RINGSTREAM_ETCD                 replication: etcd client URLs, comma-separated (leadership and fencing)
  --replicas <n>              RINGSTREAM_REPLICAS             replicas per shard, this node included (default ${DEFAULTS.replicas}: none); acks wait for a majority
  --shard <name>              RINGSTREAM_SHARD                the shard this node is a replica of (default ${DEFAULTS.shard})
  --node-id <id>              RINGSTREAM_NODE_ID              this node's id, unique in the cluster and kept across restarts
  --cluster-name <name>       RINGSTREAM_CLUSTER_NAME         the cluster's name in etcd keys (default ${DEFAULTS.clusterName})
  --replication-listen <h:p>  RINGSTREAM_REPLICATION_LISTEN   where followers connect when this node leads (default: --host, any free port)
  --replication-advertise <h:p> RINGSTREAM_REPLICATION_ADVERTISE the address followers are told, when not the listen one
  --lease-ttl-ms <n>          RINGSTREAM_LEASE_TTL_MS         etcd lease TTL: failover comes about this long after a leader dies (default ${DEFAULTS.leaseTtlMs})
  --proxy-admin <addrs>       RINGSTREAM_PROXY_ADMIN          HAProxy runtime API sockets (path or host:port, comma-separated) a new leader repoints
  --proxy-backend <name>      RINGSTREAM_PROXY_BACKEND        …in this backend, server shard-<shard> (default ${DEFAULTS.proxyBackend})
  --salvage                   RINGSTREAM_SALVAGE=1            start despite WAL corruption, dropping records from the damage on
  -h, --help                                                  show this help

Streams are served under /v1/stream/<path>.`

const OPTIONS = {
  port: { type: 'string' },
  host: { type: 'string' },
  'data-dir': { type: 'string' },
  durability: { type: 'string' },
  'long-poll-timeout-ms': { type: 'string' },
  io: { type: 'string' },
  http: { type: 'string' },
  salvage: { type: 'boolean' },
  'checkpoint-interval-ms': { type: 'string' },
  'checkpoint-wal-bytes': { type: 'string' },
  'read-cache-bytes': { type: 'string' },
  'segment-bytes': { type: 'string' },
  'inline-bytes': { type: 'string' },
  'read-bytes-max': { type: 'string' },
  'wal-segment-bytes': { type: 'string' },
  'disk-reserve-bytes': { type: 'string' },
  'tls-cert': { type: 'string' },
  metrics: { type: 'string' },
  'auth-query-token': { type: 'string' },
  'auth-tokens': { type: 'string' },
  'auth-jwks': { type: 'string' },
  'log-format': { type: 'string' },
  'log-level': { type: 'string' },
  'tls-key': { type: 'string' },
  webhooks: { type: 'boolean' },
  'cluster-url': { type: 'string' },
  'node-url': { type: 'string' },
  'cluster-peers': { type: 'string' },
  etcd: { type: 'string' },
  replicas: { type: 'string' },
  shard: { type: 'string' },
  'node-id': { type: 'string' },
  'cluster-name': { type: 'string' },
  'replication-listen': { type: 'string' },
  'replication-advertise': { type: 'string' },
  'lease-ttl-ms': { type: 'string' },
  'proxy-admin': { type: 'string' },
  'proxy-backend': { type: 'string' },
  'public-url': { type: 'string' },
  'webhook-signing-key': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const

function onOff(name: string, raw: string): boolean {
  if (raw !== 'on' && raw !== 'off') throw new Error(`${name} must be on or off, got "${raw}"`)
  return raw === 'on'
}

function integer(name: string, raw: string): number {
  if (!/^\d+$/.test(raw)) throw new Error(`${name} must be a non-negative integer, got "${raw}"`)
  return Number(raw)
}

export function resolveConfig(argv: string[], env: NodeJS.ProcessEnv): Partial<ServerConfig> | 'help' {
  const { values } = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false })
  if (values.help === true) return 'help'
  const pick = (flag: keyof typeof OPTIONS, envName: string): string | undefined => {
    const value = values[flag]
    return typeof value === 'string' ? value : env[envName]
  }
  const config: Partial<ServerConfig> = {}
  const port = pick('port', 'RINGSTREAM_PORT')
  if (port !== undefined) config.port = integer('--port', port)
  const host = pick('host', 'RINGSTREAM_HOST')
  if (host !== undefined) config.host = host
  const dataDir = pick('data-dir', 'RINGSTREAM_DATA_DIR')
  if (dataDir !== undefined) config.dataDir = dataDir
  const durability = pick('durability', 'RINGSTREAM_DURABILITY')
  if (durability !== undefined) config.durability = durability as Durability
  const timeout = pick('long-poll-timeout-ms', 'RINGSTREAM_LONG_POLL_TIMEOUT_MS')
  if (timeout !== undefined) config.longPollTimeoutMs = integer('--long-poll-timeout-ms', timeout)
  const checkpointMs = pick('checkpoint-interval-ms', 'RINGSTREAM_CHECKPOINT_INTERVAL_MS')
  if (checkpointMs !== undefined) config.checkpointIntervalMs = integer('--checkpoint-interval-ms', checkpointMs)
  const checkpointBytes = pick('checkpoint-wal-bytes', 'RINGSTREAM_CHECKPOINT_WAL_BYTES')
  if (checkpointBytes !== undefined) config.checkpointWalBytes = integer('--checkpoint-wal-bytes', checkpointBytes)
  const readCache = pick('read-cache-bytes', 'RINGSTREAM_READ_CACHE_BYTES')
  if (readCache !== undefined) config.readCacheBytes = integer('--read-cache-bytes', readCache)
  const segment = pick('segment-bytes', 'RINGSTREAM_SEGMENT_BYTES')
  if (segment !== undefined) config.segmentBytes = integer('--segment-bytes', segment)
  const inline = pick('inline-bytes', 'RINGSTREAM_INLINE_BYTES')
  if (inline !== undefined) config.inlineBytesMax = integer('--inline-bytes', inline)
  const readMax = pick('read-bytes-max', 'RINGSTREAM_READ_BYTES_MAX')
  if (readMax !== undefined) config.readBytesMax = integer('--read-bytes-max', readMax)
  const walSegment = pick('wal-segment-bytes', 'RINGSTREAM_WAL_SEGMENT_BYTES')
  if (walSegment !== undefined) config.walSegmentBytes = integer('--wal-segment-bytes', walSegment)
  const reserve = pick('disk-reserve-bytes', 'RINGSTREAM_DISK_RESERVE_BYTES')
  if (reserve !== undefined) config.diskReserveBytes = integer('--disk-reserve-bytes', reserve)
  const logFormat = pick('log-format', 'RINGSTREAM_LOG_FORMAT')
  if (logFormat !== undefined) config.logFormat = logFormat as LogFormat
  const logLevel = pick('log-level', 'RINGSTREAM_LOG_LEVEL')
  if (logLevel !== undefined) config.logLevel = logLevel as LogLevel
  const tokens = pick('auth-tokens', 'RINGSTREAM_AUTH_TOKENS')
  if (tokens !== undefined) config.authTokensFile = tokens
  const jwks = pick('auth-jwks', 'RINGSTREAM_AUTH_JWKS')
  if (jwks !== undefined) config.authJwks = jwks
  const metrics = pick('metrics', 'RINGSTREAM_METRICS')
  if (metrics !== undefined) config.metrics = onOff('--metrics', metrics)
  const queryToken = pick('auth-query-token', 'RINGSTREAM_AUTH_QUERY_TOKEN')
  if (queryToken !== undefined) config.authQueryToken = onOff('--auth-query-token', queryToken)
  const tlsCert = pick('tls-cert', 'RINGSTREAM_TLS_CERT')
  if (tlsCert !== undefined) config.tlsCertFile = tlsCert
  const tlsKey = pick('tls-key', 'RINGSTREAM_TLS_KEY')
  if (tlsKey !== undefined) config.tlsKeyFile = tlsKey
  if (values.salvage === true || env.RINGSTREAM_SALVAGE === '1') config.salvage = true
  if (values.webhooks === true || env.RINGSTREAM_WEBHOOKS === '1') config.webhooks = true
  const publicUrl = pick('public-url', 'RINGSTREAM_PUBLIC_URL')
  if (publicUrl !== undefined) config.publicUrl = publicUrl.replace(/\/+$/, '')
  const clusterUrl = pick('cluster-url', 'RINGSTREAM_CLUSTER_URL')
  if (clusterUrl !== undefined) config.clusterUrl = clusterUrl.replace(/\/+$/, '')
  const clusterPeers = pick('cluster-peers', 'RINGSTREAM_CLUSTER_PEERS')
  if (clusterPeers !== undefined) config.clusterPeers = clusterPeers
  const nodeUrl = pick('node-url', 'RINGSTREAM_NODE_URL')
  if (nodeUrl !== undefined) config.nodeUrl = nodeUrl.replace(/\/+$/, '')
  const list = (raw: string): string[] => raw.split(',').map((each) => each.trim().replace(/\/+$/, '')).filter((each) => each !== '')
  const etcd = pick('etcd', 'RINGSTREAM_ETCD')
  if (etcd !== undefined) config.etcd = list(etcd)
  const replicas = pick('replicas', 'RINGSTREAM_REPLICAS')
  if (replicas !== undefined) config.replicas = integer('--replicas', replicas)
  const shard = pick('shard', 'RINGSTREAM_SHARD')
  if (shard !== undefined) config.shard = shard
  const nodeId = pick('node-id', 'RINGSTREAM_NODE_ID')
  if (nodeId !== undefined) config.nodeId = nodeId
  const clusterName = pick('cluster-name', 'RINGSTREAM_CLUSTER_NAME')
  if (clusterName !== undefined) config.clusterName = clusterName
  const replicationListen = pick('replication-listen', 'RINGSTREAM_REPLICATION_LISTEN')
  if (replicationListen !== undefined) config.replicationListen = replicationListen
  const replicationAdvertise = pick('replication-advertise', 'RINGSTREAM_REPLICATION_ADVERTISE')
  if (replicationAdvertise !== undefined) config.replicationAdvertise = replicationAdvertise
  const leaseTtl = pick('lease-ttl-ms', 'RINGSTREAM_LEASE_TTL_MS')
  if (leaseTtl !== undefined) config.leaseTtlMs = integer('--lease-ttl-ms', leaseTtl)
  const proxyAdmin = pick('proxy-admin', 'RINGSTREAM_PROXY_ADMIN')
  if (proxyAdmin !== undefined) config.proxyAdmin = list(proxyAdmin)
  const proxyBackend = pick('proxy-backend', 'RINGSTREAM_PROXY_BACKEND')
  if (proxyBackend !== undefined) config.proxyBackend = proxyBackend
  const signingKey = pick('webhook-signing-key', 'RINGSTREAM_WEBHOOK_SIGNING_KEY')
  if (signingKey !== undefined) config.webhookSigningKeyFile = signingKey
  const io = pick('io', 'RINGSTREAM_IO')
  if (io !== undefined) config.io = io as IoBackend
  const http = pick('http', 'RINGSTREAM_HTTP')
  if (http !== undefined) config.http = http as HttpBackend
  return config
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  // `ringstream rebalance …`: a cluster command, not a server (cluster/rebalance.ts).
  if (argv[0] === 'rebalance') return (await import('./cluster/rebalance.js')).rebalance(argv.slice(1))
  let resolved: Partial<ServerConfig> | 'help'
  try {
    resolved = resolveConfig(argv, process.env)
  } catch (error) {
    console.error(`ringstream: ${(error as Error).message}\n\n${HELP}`)
    process.exitCode = 2
    return
  }
  if (resolved === 'help') {
    console.log(HELP)
    return
  }
  const server = createServer(resolved)
  await server.listen()
  const recovery = server.recovery
  if (recovery !== undefined) {
    const dropped = recovery.droppedBytes > 0 ? `, cut a ${recovery.droppedBytes}-byte torn tail` : ''
    log.info(
      { records: recovery.records, checkpointLsn: recovery.checkpointLsn, ms: Math.round(recovery.ms), droppedBytes: recovery.droppedBytes },
      `ringstream: recovered ${recovery.records} WAL records after checkpoint LSN ${recovery.checkpointLsn} in ${recovery.ms.toFixed(0)} ms${dropped}`,
    )
  }
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    log.info({ signal }, `ringstream: ${signal} received, shutting down`)
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, `ringstream: error during shutdown: ${(error as Error).message}`)
        process.exit(1)
      },
    )
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGHUP', () => server.reloadAuth())
  process.on('SIGINT', () => stop('SIGINT'))
  // Announced once the signals are handled: whoever waits for this line may stop the server
  // at once (a SIGTERM between the line and the handlers killed it without a word).
  log.info({ url: server.url }, `ringstream listening on ${server.url}/v1/stream/ (${server.describe()})`)
}
