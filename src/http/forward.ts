// http/forward.ts — scale-out across nodes behind a proxy that hashes stream paths
// (deploy/haproxy.cfg). A fork whose source this node does not hold is created on the
// node that holds the source: that node is found by a HEAD of the source through the
// proxy (its answer names the node in Ringstream-Node), the PUT is forwarded to it, and
// from then on every request for the fork's path is forwarded there (cluster/forwards.ts),
// SSE and long-polls included. A node that cannot be reached is 503 NODE_UNAVAILABLE.

import { StreamError } from '../protocol/errors.js'
import type { ForkRequest } from '../streams/fork.js'
import type { HttpContext } from './context.js'
import type { Exchange } from './exchange.js'

/** Request headers not passed on: the target sets its own, and a gzipped answer would be
 * decompressed by fetch on the way back. */
const NOT_FORWARDED: ReadonlySet<string> = new Set(['host', 'content-length', 'accept-encoding'])
/** Answer headers not passed back: hop-by-hop ones, and the ones every answer here carries. */
const NOT_RETURNED: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'date',
  'uwebsockets',
  'x-content-type-options',
  'cross-origin-resource-policy',
  'access-control-allow-origin',
  'access-control-expose-headers',
])

export const NODE_HEADER = 'Ringstream-Node'

/** PUT with Stream-Forked-From of a source this node does not hold: the fork is made on
 * the source's node. Answers the request; false when the source is this node's after all. */
export async function forkOnSourceNode(x: Exchange, ctx: HttpContext, path: string, fork: ForkRequest): Promise<boolean> {
  const cluster = ctx.cluster!
  const headers: Record<string, string> = {}
  if (x.hasHeader('authorization')) headers.authorization = x.header('authorization')
  let holder: string | null
  try {
    const head = await fetch(`${cluster.clusterUrl}/v1/stream/${encodePath(fork.sourcePath)}`, { method: 'HEAD', headers, signal: AbortSignal.timeout(cluster.forwardTimeoutMs) })
    if (head.status === 404) throw new StreamError('NOT_FOUND', 'fork source stream not found')
    if (head.status === 410) throw new StreamError('CONFIG_MISMATCH', 'fork source stream was deleted')
    if (head.status === 401 || head.status === 403) throw new StreamError(head.status === 401 ? 'UNAUTHORIZED' : 'FORBIDDEN', 'the fork source refused this token')
    holder = head.headers.get(NODE_HEADER.toLowerCase())
    if (!head.ok || holder === null) throw new StreamError('NODE_UNAVAILABLE', `the fork source's node answered ${head.status}`)
  } catch (error) {
    if (error instanceof StreamError) throw error
    throw new StreamError('NODE_UNAVAILABLE', `the proxy (${cluster.clusterUrl}) cannot be reached to find the fork source: ${(error as Error).message}`)
  }
  if (holder === cluster.nodeUrl) return false
  await forward(x, ctx, holder, async (status) => {
    if (status === 200 || status === 201) await cluster.forwards.set(path, holder!)
  })
  return true
}

/** Passes the request to `holder` and its answer back; `before` runs once the status is known. */
export async function forward(x: Exchange, ctx: HttpContext, holder: string, before?: (status: number) => Promise<void>): Promise<void> {
  const cluster = ctx.cluster!
  const body = x.method === 'PUT' || x.method === 'POST' ? await x.readBody(ctx.config.appendBytesMax) : undefined
  if (x.done) return
  const headers = x.sentHeaders().filter(([name]) => !NOT_FORWARDED.has(name))
  const aborted = new AbortController()
  x.onAbort(() => aborted.abort())
  let answer: Response
  try {
    answer = await fetch(`${holder}${x.url}${x.query === '' ? '' : `?${x.query}`}`, { method: x.method, headers, body, redirect: 'manual', signal: aborted.signal })
  } catch (error) {
    if (x.aborted) return
    throw new StreamError('NODE_UNAVAILABLE', `the node holding this stream (${holder}) cannot be reached: ${(error as Error).message}`)
  }
  await before?.(answer.status)
  const returned: Array<[string, string]> = []
  answer.headers.forEach((value, name) => {
    if (NOT_RETURNED.has(name)) return
    // Locations name the holder; the client knows this stream by this node's address.
    returned.push([name, name === 'location' ? `http://${x.header('host') || cluster.nodeUrl.replace(/^https?:\/\//, '')}${x.url}` : value])
  })
  if (answer.headers.get('content-type')?.startsWith('text/event-stream') !== true || answer.body === null) {
    const bytes = Buffer.from(await answer.arrayBuffer())
    return x.send(answer.status, returned, bytes)
  }
  x.startStream(answer.status, returned)
  try {
    for await (const chunk of answer.body as unknown as AsyncIterable<Uint8Array>) {
      if (x.done) break
      x.res.cork(() => x.res.write(chunk))
    }
  } catch {
    // The holder went away mid-stream: end ours too (the client reconnects at its offset).
  }
  aborted.abort()
  x.endStream()
}

function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/')
}
