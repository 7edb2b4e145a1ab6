// http/app.ts — the application: routing by method under /v1/stream/ (the reserved
// __ds/ control routes first: http/subscriptions.ts), CORS preflight,
// metrics (/metrics, Prometheus text; see metrics/), health (/healthz: the process answers), replication status (/statusz) and readiness (/readyz: recovery is done and
// streams are served; until then every stream request is 503 NOT_READY), and turning
// every thrown error into a response via the status table.

import { accessFor } from '../auth/tokens.js'
import { STREAM_ROUTE } from '../metrics/metrics.js'
import { StreamError } from '../protocol/errors.js'
import { decodeStreamPath, isReservedPath } from '../protocol/path.js'
import type { HttpContext } from './context.js'
import type { Exchange } from './exchange.js'
import { UwsExchange } from './uws-exchange.js'
import { handleGet, handleHead } from './read.js'
import { CONTROL_PREFIX, handleControl } from './subscriptions.js'
import type { HttpRequest, HttpResponse, TemplatedApp, Uws } from './uws.js'
import { STREAM_ROUTE_PREFIX, handleDelete, handlePost, handlePut } from './write.js'

const ALLOWED_REQUEST_HEADERS = [
  'Content-Type',
  'Stream-Seq',
  'Stream-TTL',
  'Stream-Expires-At',
  'Stream-Closed',
  'Stream-Durability',
  'Stream-Forked-From',
  'Stream-Fork-Offset',
  'Stream-Fork-Sub-Offset',
  'Producer-Id',
  'Producer-Epoch',
  'Producer-Seq',
  'If-None-Match',
  'Authorization',
  'Cache-Control',
].join(', ')

type Handler = (x: Exchange, ctx: HttpContext, path: string) => void | Promise<void>
/** Moving streams between nodes (cluster/moves.ts), under the reserved prefix. */
const CLUSTER_PREFIX = '__ds/cluster/'

const HANDLERS: Readonly<Record<string, Handler>> = {
  GET: handleGet,
  HEAD: handleHead,
  PUT: handlePut,
  POST: handlePost,
  DELETE: handleDelete,
}

/** The certificate and key files of an HTTPS app (already checked: see listener.ts). */
export interface TlsFiles {
  readonly certFile: string
  readonly keyFile: string
}

export function buildApp(uws: Uws, ctx: HttpContext, tls?: TlsFiles): TemplatedApp {
  const app = tls === undefined ? uws.App() : uws.SSLApp({ cert_file_name: tls.certFile, key_file_name: tls.keyFile })
  app.any('/*', (res: HttpResponse, req: HttpRequest) => handle(new UwsExchange(res, req, ctx.metrics?.response), ctx))
  return app
}

/** Answers one request, whichever backend brought it: every thrown or rejected error
 * becomes its response through the status table. */
export function handle(x: Exchange, ctx: HttpContext): void {
  try {
    const pending = route(x, ctx)
    if (pending instanceof Promise) pending.catch((error: unknown) => x.sendError(error))
  } catch (error) {
    x.sendError(error)
  }
}

function route(x: Exchange, ctx: HttpContext): void | Promise<void> {
  if (x.method === 'OPTIONS') return preflight(x)
  if (x.url === '/healthz' && x.method === 'GET') return x.send(200, [['Content-Type', 'text/plain']], 'ok\n')
  if (x.url === '/metrics' && x.method === 'GET' && ctx.metrics !== undefined) {
    const metrics = ctx.metrics
    return metrics.text().then((text) => x.send(200, [['Content-Type', metrics.contentType]], text))
  }
  const shard = ctx.shard
  if (x.url === '/readyz' && x.method === 'GET') {
    const reason = ctx.ready ? shard?.notServing()?.message : 'recovering'
    return reason === undefined ? x.send(200, [['Content-Type', 'text/plain']], 'ready\n') : x.send(503, [['Content-Type', 'text/plain'], ['Retry-After', '1']], `${reason}\n`)
  }
  if (x.url === '/statusz' && x.method === 'GET' && shard !== undefined) return x.send(200, [['Content-Type', 'application/json']], JSON.stringify(shard.status()))
  if (!ctx.ready) throw new StreamError('NOT_READY', 'the server is recovering its data directory; retry shortly')
  if (shard !== undefined && x.url.startsWith(STREAM_ROUTE_PREFIX)) {
    const refused = shard.notServing()
    if (refused !== undefined) throw refused
    const leader = shard.leaderUrl()
    if (leader !== undefined) return shard.forward(x, leader)
  }
  if (!x.url.startsWith(STREAM_ROUTE_PREFIX)) throw new StreamError('NOT_FOUND', `no route for ${x.url}; streams live under ${STREAM_ROUTE_PREFIX}`)
  x.route = STREAM_ROUTE
  if (ctx.cluster !== undefined && x.url.startsWith(CLUSTER_PREFIX, STREAM_ROUTE_PREFIX.length)) {
    const cluster = ctx.cluster
    const checked = ctx.auth?.check(x.header('authorization'), 'write', '__ds/cluster')
    if (checked instanceof Promise) return checked.then(() => cluster.admin(x, x.url.slice(STREAM_ROUTE_PREFIX.length + CLUSTER_PREFIX.length)))
    return cluster.admin(x, x.url.slice(STREAM_ROUTE_PREFIX.length + CLUSTER_PREFIX.length))
  }
  // The reserved control prefix is routed before streams (PROTOCOL §6).
  if (x.url.startsWith(CONTROL_PREFIX, STREAM_ROUTE_PREFIX.length) && ctx.subscriptions !== undefined) return handleControl(x, ctx, x.url.slice(STREAM_ROUTE_PREFIX.length))
  const path = decodeStreamPath(x.url.slice(STREAM_ROUTE_PREFIX.length), ctx.config.streamPathBytesMax)
  if (isReservedPath(path)) throw new StreamError('RESERVED_PATH', 'paths under __ds/ are reserved for the subscription APIs')
  const handler = HANDLERS[x.method]
  if (handler === undefined) throw new StreamError('METHOD_NOT_ALLOWED', `method ${x.method} is not allowed on streams`)
  // A stream another node holds (a fork of its stream, or moved there): that node answers, and authorizes.
  const cluster = ctx.cluster
  if (cluster !== undefined) {
    const routed = cluster.route(x, path, () => handleHere(x, ctx, path, handler))
    if (routed !== undefined) return routed
  }
  return handleHere(x, ctx, path, handler)
}

function handleHere(x: Exchange, ctx: HttpContext, path: string, handler: Handler): void | Promise<void> {
  const checked = ctx.auth?.check(credential(x, ctx), accessFor(x.method), path)
  if (!(checked instanceof Promise)) return handler(x, ctx, path)
  // A JWT is verified asynchronously; the body must be taken now or uWS drops it.
  if (x.method === 'PUT' || x.method === 'POST') x.readBody(ctx.config.appendBytesMax).catch(() => {})
  return checked.then(() => handler(x, ctx, path))
}

/** `access_token=…` in a query string (RFC 6750 §2.3). */
const QUERY_TOKEN = /(?:^|&)access_token=([^&]*)/

/** The request's bearer credential, as an Authorization header value: the header, or with
 * --auth-query-token a read's ?access_token= (a browser sends a GET without headers of its
 * own with no CORS preflight, and EventSource can send no header at all). */
function credential(x: Exchange, ctx: HttpContext): string {
  const header = x.header('authorization')
  if (header !== '' || !ctx.config.authQueryToken || (x.method !== 'GET' && x.method !== 'HEAD')) return header
  const token = QUERY_TOKEN.exec(x.query)?.[1]
  if (token === undefined) return header
  try {
    return `Bearer ${decodeURIComponent(token)}`
  } catch {
    throw new StreamError('UNAUTHORIZED', 'access_token is not percent-encoded correctly')
  }
}

function preflight(x: Exchange): void {
  x.send(204, [
    ['Access-Control-Allow-Methods', 'GET, HEAD, PUT, POST, DELETE, OPTIONS'],
    ['Access-Control-Allow-Headers', ALLOWED_REQUEST_HEADERS],
    ['Access-Control-Max-Age', '86400'],
  ])
}
