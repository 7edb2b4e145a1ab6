// metrics/metrics.ts — what GET /metrics exposes, in the Prometheus text format through
// prom-client, every name prefixed ringstream_. The request path only bumps plain numbers
// (a response's route/method/status count, an append's bytes) and a WAL batch observes two
// histograms once per batch; everything else (streams, live reads, the read cache, disk
// state) is read from its owner when /metrics is scraped.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/** Where the scrape-time figures come from (server.ts wires them). */
export interface MetricSources {
  residentStreams(): number
  liveReads(): { readonly sse: number; readonly longPoll: number }
  readCounts(): { readonly hits: number; readonly misses: number } | undefined
  diskFull(): boolean
  recoveryMs(): number | undefined
  subscriptions(): SubscriptionCounts | undefined
}

export interface SubscriptionCounts {
  readonly subscriptions: number
  readonly wakes: number
  readonly webhookAttempts: number
  readonly webhookFailures: number
  readonly webhooksInFlight: number
}

const STREAM_PREFIX = '/v1/stream/'
const ROUTES = ['stream', 'healthz', 'readyz', 'metrics', 'other'] as const
const METHODS = ['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'OPTIONS', 'other'] as const

/** ROUTES' index of stream requests: the router tells it (looking at the URL again cost
 * ~2% of a request's instructions). */
export const STREAM_ROUTE = 0

/** The route of a request URL as an index into ROUTES: a bounded set, never the stream path. */
function routeOf(url: string): number {
  if (url.startsWith(STREAM_PREFIX)) return 0
  if (url === '/healthz') return 1
  if (url === '/readyz') return 2
  if (url === '/metrics') return 3
  return 4
}

function methodOf(method: string): number {
  switch (method) {
    case 'GET': return 0
    case 'HEAD': return 1
    case 'PUT': return 2
    case 'POST': return 3
    case 'DELETE': return 4
    case 'OPTIONS': return 5
    default: return 6
  }
}

/** Status codes are 100–599. */
const CODES = 600
/** A response's counter: one slot per route, method and status in a typed array (a string
 * key, built and hashed per request, cost 6% of a request's instructions; a Map of numbers 2.7%). */
const slotOf = (route: number, method: number, status: number): number => (route * METHODS.length + method) * CODES + (status < CODES ? status : 0)

function labelsOf(slot: number): { route: string; method: string; code: string } {
  const status = slot % CODES
  const rest = (slot - status) / CODES
  return { route: ROUTES[Math.floor(rest / METHODS.length)]!, method: METHODS[rest % METHODS.length]!, code: String(status) }
}

export class ServerMetrics {
  readonly registry = new Registry()
  /** Responses by slotOf(route, method, status). */
  private readonly responses = new Float64Array(ROUTES.length * METHODS.length * CODES)
  private appends = 0
  private appendBytes = 0
  private walBatches = 0
  private walRecords = 0
  private walBytes = 0
  private walSyncs = 0
  private readonly batchRecords: Histogram
  private readonly syncSeconds: Histogram

  constructor(sources: MetricSources) {
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.registry, prefix: 'ringstream_' })
    const self = this
    new Counter({
      name: 'ringstream_http_responses_total',
      help: 'HTTP responses by route (stream, healthz, readyz, metrics, other), method and status code',
      labelNames: ['route', 'method', 'code'],
      registers,
      collect() {
        this.reset()
        self.responses.forEach((count, slot) => {
          if (count > 0) this.inc(labelsOf(slot), count)
        })
      },
    })
    new Counter({
      name: 'ringstream_http_errors_total',
      help: 'HTTP responses with a 4xx or 5xx status, by route and code',
      labelNames: ['route', 'code'],
      registers,
      collect() {
        this.reset()
        self.responses.forEach((count, slot) => {
          if (count === 0 || slot % CODES < 400) return
          const { route, code } = labelsOf(slot)
          this.inc({ route, code }, count)
        })
      },
    })
    const counter = (name: string, help: string, read: () => number): void => {
      new Counter({
        name, help, registers,
        collect() {
          this.reset()
          this.inc(read())
        },
      })
    }
    const gauge = (name: string, help: string, read: () => number): void => {
      new Gauge({
        name, help, registers,
        collect() {
          this.set(read())
        },
      })
    }
    counter('ringstream_appends_total', 'Appends acknowledged (POSTs with a body that got 2xx)', () => self.appends)
    counter('ringstream_append_bytes_total', 'Bytes of acknowledged appends, as sent by clients', () => self.appendBytes)
    counter('ringstream_wal_batches_total', 'WAL group-commit batches written', () => self.walBatches)
    counter('ringstream_wal_records_total', 'WAL records written', () => self.walRecords)
    counter('ringstream_wal_bytes_total', 'WAL bytes written', () => self.walBytes)
    counter('ringstream_wal_fsyncs_total', 'WAL batches written with an fdatasync', () => self.walSyncs)
    counter('ringstream_read_cache_hits_total', 'Reads of written stream bytes served from the read cache', () => sources.readCounts()?.hits ?? 0)
    counter('ringstream_read_cache_misses_total', 'Reads of written stream bytes that went to the data files', () => sources.readCounts()?.misses ?? 0)
    gauge('ringstream_streams_resident', 'Streams in memory (the rest are in the registry store)', () => sources.residentStreams())
    gauge('ringstream_sse_connections', 'Open SSE reads', () => sources.liveReads().sse)
    gauge('ringstream_long_poll_connections', 'Waiting long-poll reads', () => sources.liveReads().longPoll)
    gauge('ringstream_disk_full', '1 while appends are refused because the disk is full', () => (sources.diskFull() ? 1 : 0))
    counter('ringstream_subscription_wakes_total', 'Subscription wakes issued (each a new generation)', () => sources.subscriptions()?.wakes ?? 0)
    counter('ringstream_webhook_attempts_total', 'Webhook requests made', () => sources.subscriptions()?.webhookAttempts ?? 0)
    counter('ringstream_webhook_failures_total', 'Webhook requests that failed (not 2xx, timed out, refused) and were rescheduled', () => sources.subscriptions()?.webhookFailures ?? 0)
    gauge('ringstream_subscriptions', 'Subscriptions held', () => sources.subscriptions()?.subscriptions ?? 0)
    gauge('ringstream_webhooks_in_flight', 'Webhook requests in flight', () => sources.subscriptions()?.webhooksInFlight ?? 0)
    gauge('ringstream_recovery_seconds', 'How long the last startup recovery took', () => (sources.recoveryMs() ?? 0) / 1000)
    this.batchRecords = new Histogram({
      name: 'ringstream_wal_batch_records',
      help: 'Records per WAL group-commit batch',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
      registers,
    })
    this.syncSeconds = new Histogram({
      name: 'ringstream_wal_sync_seconds',
      help: 'Time of a synced WAL batch write (writev + fdatasync)',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    })
  }

  /** Every response (http/exchange.ts). */
  readonly response = (method: string, url: string, status: number, route: number | undefined): void => {
    const slot = slotOf(route ?? routeOf(url), methodOf(method), status)
    this.responses[slot] = this.responses[slot]! + 1
  }

  /** An acknowledged append of `bytes` (http/write.ts). */
  appended(bytes: number): void {
    this.appends++
    this.appendBytes += bytes
  }

  /** A written WAL batch (storage/wal/wal.ts, once per batch). */
  readonly walBatch = (records: number, bytes: number, syncSeconds: number | undefined): void => {
    this.walBatches++
    this.walRecords += records
    this.walBytes += bytes
    this.batchRecords.observe(records)
    if (syncSeconds !== undefined) {
      this.walSyncs++
      this.syncSeconds.observe(syncSeconds)
    }
  }

  /** The exposition for GET /metrics. */
  text(): Promise<string> {
    return this.registry.metrics()
  }

  get contentType(): string {
    return this.registry.contentType
  }
}
