// cluster/forwarding.ts — scale-out across nodes behind a proxy that hashes stream paths
// (deploy/haproxy.cfg), as the HTTP handlers see it (http/context.ts' ClusterRouting).
// A fork whose source this node does not hold is created on the node that holds the
// source: that node is found by a HEAD of the source through the proxy (its answer names
// the node in Ringstream-Node), the PUT is forwarded to it, and from then on every request
// for the fork's path is forwarded there (cluster/forwards.ts), SSE and long-polls
// included. A node that cannot be reached is 503 NODE_UNAVAILABLE.

import { type ClusterRouting, NODE_HEADER } from '../http/context.js'
import type { Exchange } from '../http/exchange.js'
import { StreamError } from '../protocol/errors.js'
import type { Controls } from '../streams/controls.js'
import type { ForkRequest } from '../streams/fork.js'
import type { Engine } from '../streams/engine.js'
import { ForwardTable } from './forwards.js'
import { Moves } from './moves.js'

/** Request headers not passed on: the target sets its own, and a gzipped answer would be
 * decompressed by fetch on the way back. */
const NOT_FORWARDED: ReadonlySet<string> = new Set(['host', 'content-length', 'accept-encoding'])
/** Answer headers not passed back: hop-by-hop ones, the ones every answer here carries,
 * and the encoding (fetch has decoded the body already: passing `gzip` on with plain bytes
 * broke every forwarded read of 4 KiB or more of JSON or text). */
const NOT_RETURNED: ReadonlySet<string> = new Set([
  'content-encoding',
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
/** How long finding a fork source's node may take. */
const FIND_SOURCE_TIMEOUT_MS = 5000

export interface ForwardingOptions {
  /** The proxy every stream is reachable through. */
  readonly clusterUrl: string
  /** This node's own URL, as other nodes reach it (known once the server listens). */
  readonly nodeUrl: () => string
  /** Where forward records are kept (durable control records). */
  readonly controls: Controls
  /** Largest request body passed on (the server's append limit). */
  readonly bodyBytesMax: number
  /** Longest stream path in bytes. */
  readonly streamPathBytesMax: number
  /** The engine whose streams may move to other nodes. */
  readonly engine: Engine
  /** The other shards, each as its replicas' URLs (--cluster-peers): asked while streams
   * move, and a forward to a node that refuses connections goes to the next of its shard. */
  readonly shards: () => ReadonlyArray<readonly string[]>
}

export class Forwarding implements ClusterRouting {
  private readonly forwards: ForwardTable
  private readonly moves: Moves

  constructor(private readonly options: ForwardingOptions) {
    this.forwards = new ForwardTable(options.controls)
    options.controls.receivers.push(this.forwards)
    this.moves = new Moves({
      engine: options.engine,
      controls: options.controls,
      forwards: this.forwards,
      nodeUrl: options.nodeUrl,
      shards: options.shards,
      bodyBytesMax: options.bodyBytesMax,
      streamPathBytesMax: options.streamPathBytesMax,
      forward: (x, holder) => this.forward(x, holder),
    })
    options.controls.receivers.push(this.moves)
  }

  route(x: Exchange, path: string, local: () => void | Promise<void>): void | Promise<void> | undefined {
    return this.moves.route(x, path, local)
  }

  servesHere(path: string): boolean {
    return this.moves.servesHere(path)
  }

  movedMeanwhile(x: Exchange, path: string): Promise<void> | undefined {
    return this.moves.movedMeanwhile(x, path)
  }

  admin(x: Exchange, action: string): void | Promise<void> {
    return this.moves.admin(x, action)
  }

  get nodeUrl(): string {
    return this.options.nodeUrl()
  }

  holderOf(path: string): string | undefined {
    return this.forwards.holderOf(path)
  }

  /** PUT with Stream-Forked-From of a source this node does not hold: the fork is made on
   * the source's node (known from an earlier fork, or found through the proxy). Answers the
   * request; false when the source is this node's after all. */
  async forkElsewhere(x: Exchange, path: string, fork: ForkRequest): Promise<boolean> {
    const holder = this.forwards.holderOf(fork.sourcePath) ?? (await this.findHolder(x, fork.sourcePath))
    if (holder === this.nodeUrl) return false
    await this.forward(x, holder, async (status) => {
      if (status === 200 || status === 201) await this.forwards.set(path, holder)
    })
    return true
  }

  /** The node holding `sourcePath`, from a HEAD through the proxy. */
  private async findHolder(x: Exchange, sourcePath: string): Promise<string> {
    const headers: Record<string, string> = {}
    if (x.hasHeader('authorization')) headers.authorization = x.header('authorization')
    const { clusterUrl } = this.options
    try {
      const head = await fetch(`${clusterUrl}/v1/stream/${encodePath(sourcePath)}`, { method: 'HEAD', headers, signal: AbortSignal.timeout(FIND_SOURCE_TIMEOUT_MS) })
      if (head.status === 404) throw new StreamError('NOT_FOUND', 'fork source stream not found')
      if (head.status === 410) throw new StreamError('CONFIG_MISMATCH', 'fork source stream was deleted')
      if (head.status === 401 || head.status === 403) throw new StreamError(head.status === 401 ? 'UNAUTHORIZED' : 'FORBIDDEN', 'the fork source refused this token')
      const holder = head.headers.get(NODE_HEADER.toLowerCase())
      if (!head.ok || holder === null) throw new StreamError('NODE_UNAVAILABLE', `the fork source's node answered ${head.status}`)
      return holder
    } catch (error) {
      if (error instanceof StreamError) throw error
      throw new StreamError('NODE_UNAVAILABLE', `the proxy (${clusterUrl}) cannot be reached to find the fork source: ${(error as Error).message}`)
    }
  }

  /** Passes the request to `holder` and its answer back; `before` runs once the status is known. */
  forward(x: Exchange, holder: string, before?: (status: number) => Promise<void>): Promise<void> {
    const replicas = this.options.shards().find((shard) => shard.includes(holder)) ?? []
    return forwardTo(x, holder, this.options.bodyBytesMax, this.nodeUrl, before, replicas.filter((replica) => replica !== holder))
  }
}

/** Passes the request to `holder` and its answer back (live reads streamed through);
 * `before` runs once the status is known. Also how a replica passes requests to its leader.
 * `others`: the other replicas of the holder's shard, tried in turn while the connection is
 * refused (a dead process: the request never arrived, so sending it again is safe; one of
 * them is or finds the new leader). */
export async function forwardTo(x: Exchange, holder: string, bodyBytesMax: number, nodeUrl: string, before?: (status: number) => Promise<void>, others: readonly string[] = []): Promise<void> {
  const body = x.method === 'PUT' || x.method === 'POST' ? await x.readBody(bodyBytesMax) : undefined
  if (x.done) return
  const headers = x.sentHeaders().filter(([name]) => !NOT_FORWARDED.has(name))
  // Plain bytes from the holder: fetch would ask for gzip itself, and decode it here again.
  headers.push(['accept-encoding', 'identity'])
  const aborted = new AbortController()
  x.onAbort(() => aborted.abort())
  let answer: Response
  try {
    answer = await fetchFirst([holder, ...others], `${x.url}${x.query === '' ? '' : `?${x.query}`}`, { method: x.method, headers, body, redirect: 'manual', signal: aborted.signal })
  } catch (error) {
    if (x.aborted) return
    throw new StreamError('NODE_UNAVAILABLE', `the node holding this stream (${holder}${others.length > 0 ? ' and its shard' : ''}) cannot be reached: ${(error as Error).message}`)
  }
  await before?.(answer.status)
  const returned: Array<[string, string]> = []
  answer.headers.forEach((value, name) => {
    if (NOT_RETURNED.has(name)) return
    // Locations name the holder; the client knows this stream by this node's address.
    returned.push([name, name === 'location' ? `http://${x.header('host') || nodeUrl.replace(/^https?:\/\//, '')}${x.url}` : value])
  })
  // Live answers are passed on as they come: SSE, and the NDJSON of a watch (cluster/stream-watch.ts).
  const type = answer.headers.get('content-type') ?? ''
  if (!(type.startsWith('text/event-stream') || type.startsWith('application/x-ndjson')) || answer.body === null) {
    const bytes = Buffer.from(await answer.arrayBuffer())
    return x.send(answer.status, returned, bytes)
  }
  x.startStream(answer.status, returned)
  try {
    for await (const chunk of answer.body as unknown as AsyncIterable<Uint8Array>) {
      if (x.done) break
      x.write(chunk)
    }
  } catch {
    // The holder went away mid-stream: end ours too (the client reconnects at its offset).
  }
  aborted.abort()
  x.endStream()
}

/** `url` at the first of `targets` that takes the connection: the next is tried only while
 * one refuses it (the request never arrived). */
async function fetchFirst(targets: readonly string[], url: string, init: RequestInit): Promise<Response> {
  for (let i = 0; ; i++) {
    try {
      return await fetch(`${targets[i]}${url}`, init)
    } catch (error) {
      if (i + 1 === targets.length || (error as { cause?: { code?: string } }).cause?.code !== 'ECONNREFUSED') throw error
    }
  }
}

function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/')
}
