// http/context.ts — what every HTTP handler shares: the engine, the configuration, the
// live-reader bookkeeping (long-polls and SSE sessions), one ticker for all SSE sessions,
// and injectable time and randomness.

import type { Authenticator } from '../auth/auth.js'
import type { ServerMetrics } from '../metrics/metrics.js'
import type { ServerConfig } from '../config.js'
import { currentInterval, nextCursor } from '../protocol/cursor.js'
import type { Engine } from '../streams/engine.js'
import type { Stream } from '../streams/stream.js'
import type { SubscriptionManager } from '../subscriptions/manager.js'
import type { ForkRequest } from '../streams/fork.js'
import type { Exchange } from './exchange.js'
import type { StreamError } from '../protocol/errors.js'

export interface Closable {
  /** What kind of live read this is (metrics). */
  readonly kind: 'sse' | 'long-poll'
  /** Ends the live read during shutdown. */
  shutdown(): void
}

export interface Ticking {
  tick(nowMs: number): void
}

export interface Deferred {
  runDeferred(): void
}

/** An SSE data event built once and written to every session that needs the same bytes. */
export interface SharedFrame {
  readonly start: number
  readonly end: number
  readonly frame: Buffer
  /** The frame followed by a control event, for the sessions that send that same control
   * event (most do: same position, and the same cursor unless they echoed a current one). */
  withControl?: { readonly cursor: string; readonly upToDate: boolean; readonly closed: boolean; readonly bytes: Buffer }
}

/** Names the node that holds a stream in HEAD answers, when it runs in a cluster. */
export const NODE_HEADER = 'Ringstream-Node'

/** Scale-out behind a path-hashing proxy as the handlers use it (cluster/forwarding.ts
 * implements it; http/ knows nothing else of other nodes). */
export interface ClusterRouting {
  /** This node's own URL, as other nodes reach it. */
  readonly nodeUrl: string
  /** Whether this node writes `path` itself now (not forwarded, not moving out or in). */
  servesHere(path: string): boolean
  /** The node holding `path`, when another node does: it answers every request for it. */
  holderOf(path: string): string | undefined
  /** Before a stream request is handled here: forwards it when another node holds the
   * path (or is moving it), or runs `local`; undefined: handle it here now. */
  route(x: Exchange, path: string, local: () => void | Promise<void>): void | Promise<void> | undefined
  /** After a write's body was read: forwards it when the stream moved meanwhile. */
  movedMeanwhile(x: Exchange, path: string): Promise<void> | undefined
  /** The `__ds/cluster/` routes (moving streams between nodes). */
  admin(x: Exchange, action: string): void | Promise<void>
  /** Passes the request to `holder` and its answer back. */
  forward(x: Exchange, holder: string): Promise<void>
  /** PUT of a fork whose source this node does not hold: made on the source's node.
   * Answers the request; false when the source turns out to be this node's. */
  forkElsewhere(x: Exchange, path: string, fork: ForkRequest): Promise<boolean>
}

/** The feed other nodes follow for cluster-wide subscriptions (cluster/stream-watch.ts
 * implements it): POST /v1/stream/__ds/watch. */
export interface WatchFeed {
  /** Answers the request ({pattern?, streams?}) with the matching streams' tails, then
   * their changes, until the connection ends. */
  serve(x: Exchange): Promise<void>
}

/** A replicated shard as the handlers see it (cluster/replica.ts implements it): only the
 * shard's leader serves streams; the other replicas pass requests to it. */
export interface ShardRouting {
  /** Why this node serves no stream request now (no leader, etcd unreachable, a bad
   * configuration); undefined: it does, itself or through its leader. */
  notServing(): StreamError | undefined
  /** The leader's URL when another node leads; undefined: this node leads. */
  leaderUrl(): string | undefined
  /** Passes the request to the leader and its answer back. */
  forward(x: Exchange, leaderUrl: string): Promise<void>
  /** GET /statusz: role, shard, epoch, positions. */
  status(): object
}

export class HttpContext {
  readonly live = new Set<Closable>()
  /** Recovery is done: streams are served (until then the app answers health checks only). */
  ready = false
  private readonly ticking = new Set<Ticking>()
  private ticker: NodeJS.Timeout | undefined
  /** Data frames built during this event-loop turn, by stream; cleared on the next turn so
   * no stream keeps a frame while idle. Sessions woken by one append share one frame. */
  private readonly frames = new Map<Stream, SharedFrame>()
  /** Work moved out of the current uWS callback to the next check phase. */
  private deferred = new Set<Deferred>()
  /** Reused for joining a response body's parts (see joinForSend). */
  private scratch = Buffer.allocUnsafe(0)

  /** Counted requests and appends for GET /metrics; undefined with --metrics off. */
  metrics: ServerMetrics | undefined
  /** Scale-out behind a path-hashing proxy; undefined: a single node. */
  cluster: ClusterRouting | undefined
  /** Replication: this node is one replica of a shard; undefined: not replicated. */
  shard: ShardRouting | undefined
  /** Cluster-wide subscriptions: the changes of this node's streams, for other nodes. */
  watches: WatchFeed | undefined
  /** The reserved subscription APIs (PROTOCOL §6); undefined: not served. */
  subscriptions: SubscriptionManager | undefined
  /** Bearer tokens every stream request must present (--auth-tokens, --auth-jwks); undefined: open. */
  auth: Authenticator | undefined

  constructor(
    readonly engine: Engine,
    readonly config: ServerConfig,
    readonly now: () => number = Date.now,
    readonly random: () => number = Math.random,
  ) {}

  /** Bytes read and sent at a time (an SSE event, a piece of a large response). */
  get pieceBytes(): number {
    return Math.min(this.config.readChunkBytes, this.config.readBytesMax)
  }

  cursor(clientCursor: string | undefined): string {
    // Most readers echo no cursor (or an old one) and get the interval's number: made once
    // per interval, not once per SSE session per event.
    if (clientCursor === undefined) {
      const nowMs = this.now()
      const interval = currentInterval(nowMs)
      if (interval !== this.intervalCursor[0]) this.intervalCursor = [interval, nextCursor(nowMs, undefined, this.random)]
      return this.intervalCursor[1]
    }
    return nextCursor(this.now(), clientCursor, this.random)
  }

  private intervalCursor: [number, string] = [Number.NaN, '']

  /** One interval timer serves every ticking session, and only while there are any. */
  startTicking(session: Ticking): void {
    this.ticking.add(session)
    if (this.ticker !== undefined) return
    this.ticker = setInterval(() => {
      const nowMs = this.now()
      for (const each of this.ticking) each.tick(nowMs)
    }, Math.min(1000, this.config.sseKeepAliveMs))
    this.ticker.unref()
  }

  stopTicking(session: Ticking): void {
    this.ticking.delete(session)
    if (this.ticking.size > 0 || this.ticker === undefined) return
    clearInterval(this.ticker)
    this.ticker = undefined
  }

  /** Runs `work` once on the next turn however often it is deferred before then. An append
   * wakes SSE sessions from inside the writer's uWS handler, where uWS cannot cork another
   * socket: every session would pay uncorked writes. Outside any handler each corks. */
  defer(work: Deferred): void {
    if (this.deferred.size === 0) {
      setImmediate(() => {
        const batch = this.deferred
        this.deferred = new Set()
        for (const each of batch) each.runDeferred()
      })
    }
    this.deferred.add(work)
  }

  /** The parts as one buffer, valid only until the next call: for bodies handed to uWS at
   * once (uWS sends what it can and copies the rest, keeping no reference). A fresh buffer
   * per catch-up response cost page faults and a copy of every byte. */
  joinForSend(parts: readonly Uint8Array[], length: number): Uint8Array {
    if (parts.length === 1) return parts[0]!
    if (this.scratch.length < length) this.scratch = Buffer.allocUnsafe(Math.max(length, this.scratch.length * 2))
    let at = 0
    for (const part of parts) {
      this.scratch.set(part, at)
      at += part.length
    }
    return this.scratch.subarray(0, length)
  }

  sharedFrame(stream: Stream, start: number): SharedFrame | undefined {
    const shared = this.frames.get(stream)
    return shared !== undefined && shared.start === start ? shared : undefined
  }

  shareFrame(stream: Stream, shared: SharedFrame): void {
    this.frames.set(stream, shared)
    this.defer(this.framesClearer)
  }

  private readonly framesClearer: Deferred = { runDeferred: () => this.frames.clear() }
}
