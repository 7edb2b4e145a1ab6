// subscriptions/manager.ts — the subscription state machine (PROTOCOL §6, §7): create /
// re-confirm / delete, stream links (glob backfill at the tail, explicit add/remove, new
// matching streams linked before their first byte), pending work, wakes with monotonic
// generations, leases, claim / ack / release / webhook callback with token and generation
// fencing. Every state change is a control record (streams/controls.ts) made durable before
// the request that caused it is answered; recovery replays them (restore) and start() then
// resumes leases, deliveries and wakes. Webhook I/O is delivery.ts's; this file decides.

import { StreamError, badRequest } from '../protocol/errors.js'
import { formatOffset, parseOffsetToken } from '../protocol/offset.js'
import type { ControlReceiver } from '../streams/controls.js'
import type { Engine, StreamObserver } from '../streams/engine.js'
import type { Stream } from '../streams/stream.js'
import { type MaybePromise, all } from '../util/maybe.js'
import { log } from '../util/log.js'
import type { SubscriptionKeys } from './keys.js'
import {
  type Link,
  type SubscriptionConfig,
  Subscription,
  checkSubscriptionId,
  configHash,
  decodeLink,
  decodeSubscription,
  encodeLink,
  encodeSubscription,
  linkKey,
  newIncarnation,
  newWakeId,
  notFound,
  parseKey,
  subscriptionKey,
} from './model.js'
import { checkWebhookUrl } from './webhook-url.js'
import { SubscriptionDirectory } from './directory.js'
import type { Interest, RemoteSink, RemoteStreams } from './remote.js'

export interface SubscriptionLimits {
  /** Subscriptions a server holds: each costs memory and a glob match per append. */
  readonly subscriptionsMax: number
  /** Links one subscription holds (in memory; a backfill beyond it is refused). */
  readonly linksMax: number
  /** Streams one wake lists: bounds a webhook body and a wake's stored snapshot; the rest
   * stay pending and come with the next wake. */
  readonly wakeStreamsMax: number
}

export interface ManagerOptions extends SubscriptionLimits {
  readonly engine: Engine
  readonly keys: SubscriptionKeys
  readonly webhooksEnabled: boolean
  /** The server's public base URL (callback and JWKS URLs are built on it). */
  readonly baseUrl: () => string
  readonly streamPathBytesMax: number
  readonly now?: () => number
}

/** The webhook side, told when a wake needs delivering (delivery.ts). */
export interface WakeDelivery {
  deliver(sub: Subscription): void
  cancel(sub: Subscription): void
}

export interface StreamInfo {
  readonly path: string
  readonly link_type: 'glob' | 'explicit'
  readonly acked_offset: string
  readonly tail_offset: string
  readonly has_pending: boolean
}

export interface AckRequest {
  readonly wakeId: unknown
  readonly generation: unknown
  readonly acks: unknown
  readonly done: unknown
}

/** A wake event another node's wake stream refused is written again after these pauses. */
const WAKE_EVENT_RETRY_MS_MIN = 500
const WAKE_EVENT_RETRY_MS_MAX = 10_000
/** How often leases are checked: a tenth of the shortest lease. */
const LEASE_SWEEP_MS = 100

export class SubscriptionManager implements ControlReceiver, StreamObserver {
  private readonly subs = new SubscriptionDirectory()
  private readonly leased = new Set<Subscription>()
  /** Recovery: links made during replay, stored once started. */
  private unsaved: Array<[Subscription, Link]> | undefined = []
  private leaseTimer: NodeJS.Timeout | undefined
  private readonly now: () => number
  /** Wakes issued (metrics). */
  wakes = 0
  delivery: WakeDelivery | undefined
  /** The other nodes of a cluster (cluster-wide subscriptions); undefined: a lone node. */
  remote: RemoteStreams | undefined

  constructor(private readonly options: ManagerOptions) {
    this.now = options.now ?? Date.now
  }

  get size(): number {
    return this.subs.size
  }

  /** The webhook signing keys as a JWK Set (PROTOCOL §6.5). */
  jwks(): { keys: unknown[] } {
    return { keys: this.options.keys.published(this.now()) }
  }

  get(id: string): Subscription {
    const sub = this.subs.get(id)
    if (sub === undefined) throw notFound(id)
    return sub
  }

  // ---- recovery ----------------------------------------------------------------------

  restore(key: string, value: string | undefined): void {
    const parsed = parseKey(key)
    if (parsed === undefined) return
    const { id, path } = parsed
    if (path === undefined) {
      const previous = this.subs.get(id)
      if (previous !== undefined) this.forget(previous)
      if (value === undefined) return
      const sub = decodeSubscription(id, value)
      this.subs.add(sub)
      // A newer record of the same incarnation: its links (and their index entries) stay.
      if (previous?.incarnation === sub.incarnation) for (const link of previous.links.values()) this.subs.link(sub, link)
      return
    }
    const sub = this.subs.get(id)
    if (sub === undefined) return
    if (value === undefined) return void this.subs.unlink(sub, path)
    const link = decodeLink(sub, path, value)
    if (link !== undefined) this.subs.link(sub, link)
  }

  /** After recovery: stores links replay made, resumes leases, deliveries and wakes. */
  start(): Promise<void> {
    const writes: Array<MaybePromise<void>> = []
    for (const [sub, link] of this.unsaved ?? []) if (this.subs.holds(sub) && sub.links.get(link.path) === link) writes.push(this.saveLink(sub, link))
    this.unsaved = undefined
    for (const sub of this.subs.values()) {
      for (const link of sub.links.values()) this.refreshPending(sub, link)
      if (sub.wake?.leaseUntilMs !== undefined) this.leased.add(sub)
    }
    // Leases that ran out while the server was down end first (and wake again).
    this.sweepLeases()
    const nowMs = this.now()
    for (const sub of this.subs.values()) {
      const wake = sub.wake
      if (wake === undefined) writes.push(this.maybeWake(sub))
      else if (sub.config.type === 'webhook') this.delivery?.deliver(sub)
      // An unclaimed wake's event may not have reached its stream before a crash: again.
      else if (wake.holder === undefined) writes.push(this.writeWakeEvent(sub, wake.snapshot[0]?.[0] ?? '', nowMs))
    }
    this.leaseTimer = setInterval(() => this.sweepLeases(), LEASE_SWEEP_MS)
    this.leaseTimer.unref()
    // The other nodes' streams: listed again in the background (their tails were not stored).
    for (const sub of this.subs.values()) void this.follow(sub, undefined)
    return Promise.all(writes).then(() => undefined)
  }

  stop(): void {
    this.touched.clear()
    if (this.leaseTimer !== undefined) clearInterval(this.leaseTimer)
    this.leaseTimer = undefined
    for (const sub of this.subs.values()) {
      this.delivery?.cancel(sub)
      this.remote?.unfollow(sub.id)
    }
  }

  // ---- the engine's events -----------------------------------------------------------

  changed(stream: Stream, replayed: boolean): void {
    if (this.subs.size === 0) return
    if (replayed) return this.linkAndWake(stream, true)
    // Once per stream per event-loop turn, not per append: a group commit acknowledges a
    // whole batch of appends in one turn, and each wake reads only the stream's tail.
    if (this.touched.size === 0) setImmediate(this.wakeTouched)
    this.touched.add(stream)
  }

  /** Streams changed this turn (see changed()). */
  private touched = new Set<Stream>()

  private readonly wakeTouched = (): void => {
    const touched = this.touched
    this.touched = new Set()
    for (const stream of touched) {
      // One stream's failure (a refused link write, say) must not drop the others' wakes.
      try {
        // A stream deleted meanwhile was handled by removed(): it links and wakes nothing now.
        if (this.options.engine.registry.goneReason(stream) === undefined) this.linkAndWake(stream, false)
      } catch (error) {
        log.error({ err: error, stream: stream.path }, `ringstream: waking the subscriptions of ${stream.path} failed: ${String(error)}`)
      }
    }
  }

  private linkAndWake(stream: Stream, replayed: boolean): void {
    const path = stream.path
    for (const sub of this.subs.candidates(path)) {
      let link = sub.links.get(path)
      if (link === undefined) {
        if (sub.glob === undefined || !sub.glob.matches(path)) continue
        if (sub.links.size >= this.options.linksMax) {
          log.warn({ subscription: sub.id, stream: path }, `ringstream: subscription ${sub.id} holds ${this.options.linksMax} links: ${path} is not linked`)
          continue
        }
        // A stream discovered by its first change is linked before that change.
        link = { path, explicit: false, streamId: stream.id, acked: -1 }
        this.subs.link(sub, link)
        this.persistLink(sub, link)
      } else if (link.streamId !== stream.id) {
        link.streamId = stream.id
        link.acked = -1
        this.persistLink(sub, link)
      }
      // A stream here rules over any report of its path from another node.
      link.remote = undefined
      this.refreshPending(sub, link, stream)
      if (!replayed) void Promise.resolve(this.maybeWake(sub)).catch(reportWriteError)
    }
  }

  removed(stream: Stream): void {
    if (this.subs.size === 0) return
    for (const sub of this.subs.candidates(stream.path)) {
      const link = sub.links.get(stream.path)
      if (link === undefined || link.streamId !== stream.id) continue
      if (this.unsaved !== undefined) {
        sub.pending.delete(link.path)
        continue // replay: the stream id fences the stored cursor
      }
      this.unlinkStream(sub, link)
    }
  }

  // ---- requests ----------------------------------------------------------------------

  /** PUT: resolves to [subscription, created]. */
  create(id: string, config: SubscriptionConfig): MaybePromise<[Subscription, boolean]> {
    checkSubscriptionId(id)
    const hash = configHash(config)
    const existing = this.subs.get(id)
    if (existing !== undefined) {
      if (existing.hash !== hash) throw new StreamError('SUBSCRIPTION_ALREADY_EXISTS', `subscription ${id} exists with a different configuration`)
      return [existing, false]
    }
    if (config.type === 'webhook') {
      if (!this.options.webhooksEnabled) throw badRequest('webhook subscriptions are off on this server (start it with --webhooks)')
      const verdict = checkWebhookUrl(config.webhookUrl!)
      if (!verdict.ok) throw new StreamError('WEBHOOK_URL_REJECTED', verdict.reason)
    }
    if (this.subs.size >= this.options.subscriptionsMax) throw badRequest(`this server holds its maximum of ${this.options.subscriptionsMax} subscriptions`)
    const sub = new Subscription(id, newIncarnation(), config, hash, this.now())
    const links: Link[] = []
    for (const path of config.streams) links.push(this.linkAtTail(path, true))
    if (sub.glob !== undefined) {
      const glob = sub.glob
      this.options.engine.registry.forEachLive(
        (path) => glob.matches(path) && !config.streams.includes(path),
        (stream) => {
          if (links.length >= this.options.linksMax) throw badRequest(`pattern ${config.pattern} matches more than ${this.options.linksMax} streams`)
          links.push({ path: stream.path, explicit: false, streamId: stream.id, acked: stream.tail })
          return true
        },
      )
    }
    this.subs.add(sub)
    for (const link of links) this.subs.link(sub, link)
    const writes: Array<MaybePromise<unknown>> = [this.save(sub), ...links.map((link) => this.saveLink(sub, link))]
    // The other nodes' matching streams are linked at their tails before the answer.
    writes.push(this.follow(sub, 'all'))
    return andAll(writes, (): [Subscription, boolean] => [sub, true])
  }

  delete(id: string): MaybePromise<void> {
    const sub = this.subs.get(id)
    if (sub === undefined) return undefined
    this.forget(sub)
    this.delivery?.cancel(sub)
    this.remote?.unfollow(id)
    const controls = this.options.engine.controls
    const writes = [controls.put(subscriptionKey(id), undefined), ...[...sub.links.keys()].map((path) => controls.put(linkKey(id, path), undefined))]
    return andAll(writes, () => undefined)
  }

  addStreams(id: string, paths: readonly string[]): MaybePromise<void> {
    const sub = this.get(id)
    if (sub.links.size + paths.length > this.options.linksMax) throw badRequest(`a subscription holds at most ${this.options.linksMax} streams`)
    const writes: Array<MaybePromise<void>> = []
    const added = new Set<string>()
    for (const path of paths) {
      const existing = sub.links.get(path)
      if (existing?.explicit === true) continue
      if (existing === undefined) added.add(path)
      const link = existing ?? this.linkAtTail(path, true)
      link.explicit = true
      this.subs.link(sub, link)
      writes.push(this.saveLink(sub, link))
    }
    // Streams added now that another node holds are linked at their tails before the answer.
    writes.push(this.follow(sub, added))
    return andAll(writes, () => undefined)
  }

  removeStream(id: string, path: string): MaybePromise<void> {
    const sub = this.get(id)
    const link = sub.links.get(path)
    if (link === undefined || !link.explicit) return undefined
    link.explicit = false
    this.subs.dropExplicit(sub, path)
    void this.follow(sub, undefined)
    // The glob link stays while the pattern matches (PROTOCOL §6.4).
    if (sub.glob?.matches(path) === true && link.streamId !== 0) return this.saveLink(sub, link)
    this.subs.unlink(sub, path)
    return this.options.engine.controls.put(linkKey(id, path), undefined)
  }

  /** Pull-wake: takes the lease on the current wake (making one if work is pending). */
  claim(id: string, worker: string): MaybePromise<Record<string, unknown>> {
    const sub = this.get(id)
    if (sub.config.type !== 'pull-wake') throw badRequest(`subscription ${id} is not a pull-wake subscription`)
    this.sweepLeases()
    const held = sub.wake?.holder
    if (held !== undefined) throw new StreamError('ALREADY_CLAIMED', `subscription ${id} is claimed by ${held}`, { currentHolder: held, generation: sub.generation })
    if (sub.wake === undefined && sub.pending.size === 0) throw new StreamError('NO_PENDING_WORK', `subscription ${id} has no pending work`)
    const nowMs = this.now()
    const writes: Array<MaybePromise<unknown>> = []
    if (sub.wake === undefined) writes.push(this.issueWake(sub))
    const wake = sub.wake!
    // The worker starts now: it gets the streams pending now.
    wake.snapshot = this.snapshotPending(sub)
    wake.holder = worker
    wake.leaseUntilMs = nowMs + sub.config.leaseTtlMs
    this.leased.add(sub)
    writes.push(this.save(sub))
    const token = this.options.keys.issueToken({ subject: sub.subject, generation: wake.generation, wakeId: wake.id }, nowMs)
    const body = { wake_id: wake.id, generation: wake.generation, token, streams: this.snapshotInfos(sub), lease_ttl_ms: sub.config.leaseTtlMs }
    return andAll(writes, () => body)
  }

  /** Pull-wake ack (also a heartbeat) or webhook callback: resolves to { ok, next_wake }. */
  ack(id: string, token: string, request: AckRequest, type: 'pull-wake' | 'webhook'): MaybePromise<Record<string, unknown>> {
    const sub = this.get(id)
    if (sub.config.type !== type) throw badRequest(`subscription ${id} is a ${sub.config.type} subscription`)
    this.fence(sub, token, request)
    const writes = this.applyAcks(sub, request.acks)
    let nextWake = false
    if (request.done === true) {
      this.endWake(sub)
      nextWake = sub.pending.size > 0
      writes.push(this.maybeWake(sub))
    } else {
      sub.wake!.leaseUntilMs = this.now() + sub.config.leaseTtlMs
      this.leased.add(sub)
    }
    writes.push(this.save(sub))
    return andAll(writes, () => ({ ok: true, next_wake: nextWake }))
  }

  /** Pull-wake: gives the lease back without acking; pending work is woken again. */
  release(id: string, token: string, request: AckRequest): MaybePromise<void> {
    const sub = this.get(id)
    if (sub.config.type !== 'pull-wake') throw badRequest(`subscription ${id} is not a pull-wake subscription`)
    this.fence(sub, token, request)
    this.endWake(sub)
    return andAll([this.save(sub), this.maybeWake(sub)], () => undefined)
  }

  // ---- webhook delivery's side -------------------------------------------------------

  /** The body of the current wake's webhook request, or undefined when there is none. */
  wakeBody(sub: Subscription): string | undefined {
    const wake = sub.wake
    if (wake === undefined || !this.subs.holds(sub)) return undefined
    const nowMs = this.now()
    const token = this.options.keys.issueToken({ subject: sub.subject, generation: wake.generation, wakeId: wake.id }, nowMs)
    return JSON.stringify({
      subscription_id: sub.id,
      wake_id: wake.id,
      generation: wake.generation,
      streams: this.snapshotInfos(sub),
      callback_url: this.actionUrl(sub.id, 'callback'),
      callback_token: token,
    })
  }

  /** The receiver answered 2xx for `wakeId`; `{ "done": true }` acks the wake's snapshot. */
  delivered(sub: Subscription, wakeId: string, done: boolean): MaybePromise<void> {
    if (!this.subs.holds(sub) || sub.wake?.id !== wakeId) return undefined
    sub.retry = undefined
    if (!done) return this.save(sub)
    const writes: Array<MaybePromise<void>> = []
    for (const [path, tail] of sub.wake.snapshot) {
      const link = sub.links.get(path)
      if (link === undefined || link.acked >= tail) continue
      link.acked = tail
      this.refreshPending(sub, link)
      writes.push(this.saveLink(sub, link))
    }
    this.endWake(sub)
    writes.push(this.save(sub), this.maybeWake(sub))
    return andAll(writes, () => undefined)
  }

  /** The attempt for `wakeId` failed: records the next attempt's time (persisted, so a
   * restart keeps the schedule) and returns it. */
  deliveryFailed(sub: Subscription, wakeId: string, nextAttemptAtMs: number): void {
    if (!this.subs.holds(sub) || sub.wake?.id !== wakeId) return
    sub.retry = { attempts: (sub.retry?.attempts ?? 0) + 1, nextAttemptAtMs }
    void Promise.resolve(this.save(sub)).catch(reportWriteError)
  }

  // ---- responses ---------------------------------------------------------------------

  serialize(sub: Subscription): Record<string, unknown> {
    const base = this.options.baseUrl()
    return {
      id: sub.id,
      subscription_id: sub.id,
      type: sub.config.type,
      pattern: sub.config.pattern ?? null,
      streams: [...sub.links.values()].map((link) => ({ path: link.path, link_type: linkType(link), acked_offset: offsetOf(link.acked) })),
      webhook:
        sub.config.webhookUrl === undefined
          ? null
          : { url: sub.config.webhookUrl, signing: { alg: 'ed25519', kid: this.options.keys.kid, jwks_url: `${base}/v1/stream/__ds/jwks.json` } },
      wake_stream: sub.config.wakeStream ?? null,
      lease_ttl_ms: sub.config.leaseTtlMs,
      created_at: new Date(sub.createdAtMs).toISOString(),
      status: sub.retry === undefined ? 'active' : 'failed',
      description: sub.config.description ?? null,
      generation: sub.generation,
    }
  }

  // ---- the other nodes' streams (cluster-wide subscriptions) --------------------------

  /** Follows `sub`'s streams on the other nodes (again: the interest may have changed).
   * `atTail`: the paths whose links start at the tail their node first lists ('all': a
   * new subscription's); every other stream found is new, from its start. */
  private follow(sub: Subscription, atTail: 'all' | ReadonlySet<string> | undefined): Promise<void> | undefined {
    const remote = this.remote
    if (remote === undefined || this.unsaved !== undefined) return undefined
    const interest: Interest = { pattern: sub.config.pattern, streams: [...sub.links.values()].filter((link) => link.explicit).map((link) => link.path) }
    return remote.follow(sub.id, interest, this.remoteSink(sub, atTail), atTail !== undefined)
  }

  private remoteSink(sub: Subscription, atTail: 'all' | ReadonlySet<string> | undefined): RemoteSink {
    const current = (): boolean => this.subs.get(sub.id) === sub
    return {
      tail: (source, path, streamId, tail, initial) => {
        if (current()) this.remoteTail(sub, source, path, streamId, tail, initial && (atTail === 'all' || atTail?.has(path) === true))
      },
      gone: (_source, path, streamId) => {
        const link = sub.links.get(path)
        if (current() && link !== undefined && link.streamId === streamId && link.remote !== undefined) this.unlinkStream(sub, link)
      },
      synced: (source, listed) => {
        if (!current()) return
        for (const link of [...sub.links.values()]) if (link.remote?.source === source && !listed.has(link.path)) this.unlinkStream(sub, link)
      },
      allSynced: () => {
        if (!current()) return
        // Links to streams of other nodes made before this node restarted, that no node has now.
        for (const link of [...sub.links.values()]) if (link.remote === undefined && link.streamId !== 0 && this.streamAt(link.path) === undefined) this.unlinkStream(sub, link)
      },
    }
  }

  private remoteTail(sub: Subscription, source: number, path: string, streamId: number, tail: number, initial: boolean): void {
    // A stream here rules (another node's copy of its path is left over from a move).
    if (this.streamAt(path) !== undefined) return
    let link = sub.links.get(path)
    if (link === undefined) {
      if (sub.glob === undefined || !sub.glob.matches(path)) return
      if (sub.links.size >= this.options.linksMax) return
      // Made with the subscription: at the tail (a backfill); found later: from its start.
      link = { path, explicit: false, streamId, acked: initial ? tail : -1 }
      this.subs.link(sub, link)
      this.persistLink(sub, link)
    } else if (link.streamId !== streamId) {
      link.acked = initial && link.streamId === 0 ? tail : -1
      link.streamId = streamId
      this.persistLink(sub, link)
    }
    link.remote = { source, tail }
    this.refreshPending(sub, link)
    void Promise.resolve(this.maybeWake(sub)).catch(reportWriteError)
  }

  /** The link's stream (here or on another node) is gone: an explicit link waits for the
   * next stream at its path, a glob link goes. */
  private unlinkStream(sub: Subscription, link: Link): void {
    sub.pending.delete(link.path)
    link.remote = undefined
    if (link.explicit) {
      link.streamId = 0
      link.acked = -1
      void Promise.resolve(this.saveLink(sub, link)).catch(reportWriteError)
    } else {
      this.subs.unlink(sub, link.path)
      void Promise.resolve(this.options.engine.controls.put(linkKey(sub.id, link.path), undefined)).catch(reportWriteError)
    }
  }

  // ---- internals ---------------------------------------------------------------------

  private actionUrl(id: string, action: string): string {
    return `${this.options.baseUrl()}/v1/stream/__ds/subscriptions/${encodeURIComponent(id)}/${action}`
  }

  private linkAtTail(path: string, explicit: boolean): Link {
    const stream = this.streamAt(path)
    return { path, explicit, streamId: stream?.id ?? 0, acked: stream === undefined ? -1 : stream.tail }
  }

  private streamAt(path: string): Stream | undefined {
    const stream = this.options.engine.registry.find(path)
    return stream === undefined || stream.softDeleted || stream.deletion !== undefined ? undefined : stream
  }

  /** The tail the link's cursor is compared with: its own stream's, else nothing (0). */
  private tailOf(link: Link, known?: Stream): number {
    const stream = known ?? this.streamAt(link.path)
    if (stream !== undefined) return stream.id === link.streamId ? stream.tail : 0
    return link.remote?.tail ?? 0
  }

  private refreshPending(sub: Subscription, link: Link, known?: Stream): void {
    if (this.tailOf(link, known) > Math.max(link.acked, 0)) sub.pending.add(link.path)
    else sub.pending.delete(link.path)
  }

  private snapshotPending(sub: Subscription): Array<[string, number]> {
    const snapshot: Array<[string, number]> = []
    for (const path of sub.pending) {
      if (snapshot.length >= this.options.wakeStreamsMax) break
      const link = sub.links.get(path)
      if (link !== undefined) snapshot.push([path, this.tailOf(link)])
    }
    return snapshot
  }

  private snapshotInfos(sub: Subscription): StreamInfo[] {
    const infos: StreamInfo[] = []
    for (const [path] of sub.wake?.snapshot ?? []) {
      const link = sub.links.get(path)
      if (link === undefined) continue
      const tail = this.tailOf(link)
      infos.push({ path, link_type: linkType(link), acked_offset: offsetOf(link.acked), tail_offset: formatOffset(tail), has_pending: tail > Math.max(link.acked, 0) })
    }
    return infos
  }

  /** Starts a wake when work is pending and none is in flight. */
  private maybeWake(sub: Subscription): MaybePromise<void> {
    if (sub.wake !== undefined || sub.pending.size === 0 || this.unsaved !== undefined || !this.subs.holds(sub)) return undefined
    return this.issueWake(sub)
  }

  private issueWake(sub: Subscription): MaybePromise<void> {
    const nowMs = this.now()
    sub.generation++
    this.wakes++
    const webhook = sub.config.type === 'webhook'
    const wake = { id: newWakeId(), generation: sub.generation, snapshot: this.snapshotPending(sub), holder: undefined, leaseUntilMs: webhook ? nowMs + sub.config.leaseTtlMs : undefined }
    sub.wake = wake
    if (webhook) this.leased.add(sub)
    const saved = this.save(sub)
    if (webhook) {
      // Delivered once the wake is durable: a receiver never acts on a wake a crash forgets.
      return andAll([saved], () => this.delivery?.deliver(sub))
    }
    return andAll([saved, this.writeWakeEvent(sub, wake.snapshot[0]?.[0] ?? '', nowMs)], () => undefined)
  }

  /** Pull-wake: the wake event on the application's wake stream (PROTOCOL §7.2). */
  private writeWakeEvent(sub: Subscription, stream: string, nowMs: number): MaybePromise<void> {
    const wake = sub.wake
    if (wake === undefined) return undefined
    const event = JSON.stringify({ type: 'wake', subscription_id: sub.id, stream, generation: wake.generation, ts: nowMs })
    const wakeStream = sub.config.wakeStream!
    if (this.remote !== undefined && !this.remote.servesHere(wakeStream)) {
      // Another node holds the wake stream, or it is moving: written through the proxy in the
      // background until it is, or the wake ends.
      void this.appendElsewhere(sub, wakeStream, event)
      return undefined
    }
    try {
      const appended = this.options.engine.append({
        path: sub.config.wakeStream!,
        contentType: { value: 'application/json', essence: 'application/json' },
        body: Buffer.from(event),
        close: false,
        producer: undefined,
        streamSeq: undefined,
      })
      return Promise.resolve(appended).then(
        () => undefined,
        (error: unknown) => reportWakeStreamError(sub, error),
      )
    } catch (error) {
      return reportWakeStreamError(sub, error)
    }
  }

  /** A wake event for a wake stream another node holds: tried until written, claimed or
   * ended (a worker that never sees it would never claim, and nothing would wake it again). */
  private async appendElsewhere(sub: Subscription, wakeStream: string, event: string): Promise<void> {
    const wake = sub.wake
    for (let pause = WAKE_EVENT_RETRY_MS_MIN; ; pause = Math.min(WAKE_EVENT_RETRY_MS_MAX, pause * 2)) {
      try {
        return await this.remote!.append(wakeStream, 'application/json', event)
      } catch (error) {
        if (pause === WAKE_EVENT_RETRY_MS_MIN) reportWakeStreamError(sub, error)
      }
      await new Promise((resolve) => setTimeout(resolve, pause))
      if (sub.wake !== wake || wake?.holder !== undefined || !this.subs.holds(sub) || this.leaseTimer === undefined) return
    }
  }

  /** 401 for a bad or expired token, 409 FENCED unless it is for the current wake, still held. */
  private fence(sub: Subscription, token: string, request: AckRequest): void {
    const check = this.options.keys.checkToken(token, this.now())
    if (!check.ok) throw new StreamError(check.code, check.code === 'TOKEN_EXPIRED' ? 'token expired' : 'token invalid')
    const { claims } = check
    if (claims.subject !== sub.subject) throw new StreamError('TOKEN_INVALID', 'token is not for this subscription')
    const wake = sub.wake
    const current = wake !== undefined && (sub.config.type === 'webhook' || wake.holder !== undefined)
    if (!current || claims.generation !== wake.generation || claims.wakeId !== wake.id || request.generation !== wake.generation || request.wakeId !== wake.id) {
      throw new StreamError('FENCED', 'wake generation is stale')
    }
  }

  /** Validates every ack first, then applies them all (none on a bad one). */
  private applyAcks(sub: Subscription, acks: unknown): Array<MaybePromise<void>> {
    if (acks === undefined || acks === null) return []
    if (!Array.isArray(acks)) throw badRequest('acks must be an array')
    const updates: Array<[Link, number]> = []
    for (const ack of acks as Array<Record<string, unknown>>) {
      const path = typeof ack?.stream === 'string' ? ack.stream : ack?.path
      const link = typeof path === 'string' ? sub.links.get(path.replace(/^\/+/, '').replace(/\/+$/, '')) : undefined
      if (link === undefined) throw new StreamError('INVALID_OFFSET', `ack names a stream the subscription does not link: ${String(path)}`)
      const position = typeof ack.offset === 'string' ? parseOffsetToken(ack.offset) : null
      if (position === null) throw new StreamError('INVALID_OFFSET', `ack offset for ${link.path} must be a concrete offset (not -1 or now)`)
      if (position < link.acked) throw new StreamError('INVALID_OFFSET', `ack offset for ${link.path} goes back from the acked cursor`)
      // Another node's stream may be ahead of its last report here: its worker read it there.
      if (position > this.tailOf(link) && link.remote === undefined) throw new StreamError('INVALID_OFFSET', `ack offset for ${link.path} is beyond the stream's tail`)
      updates.push([link, position])
    }
    return updates.map(([link, position]) => {
      link.acked = position
      this.refreshPending(sub, link)
      return this.saveLink(sub, link)
    })
  }

  private endWake(sub: Subscription): void {
    sub.wake = undefined
    sub.retry = undefined
    this.leased.delete(sub)
    this.delivery?.cancel(sub)
  }

  /** Expired leases end their wake; pending work gets a new one (PROTOCOL §7.3). */
  private sweepLeases(): void {
    const nowMs = this.now()
    for (const sub of this.leased) {
      const until = sub.wake?.leaseUntilMs
      if (until !== undefined && until > nowMs) continue
      const webhook = sub.config.type === 'webhook'
      this.leased.delete(sub)
      log.info({ subscription: sub.id, generation: sub.generation }, `ringstream: subscription ${sub.id}: lease of generation ${sub.generation} expired`)
      if (sub.wake === undefined) continue
      // The next wake has a new generation: the lost worker (or receiver) is fenced. A
      // webhook whose deliveries fail keeps its retry schedule for that wake.
      sub.wake = undefined
      const writes = [this.save(sub), this.maybeWake(sub)]
      void Promise.all(writes).catch(reportWriteError)
    }
  }

  private forget(sub: Subscription): void {
    this.subs.remove(sub)
    this.leased.delete(sub)
  }

  private save(sub: Subscription): MaybePromise<void> {
    if (this.unsaved !== undefined) return undefined
    return this.options.engine.controls.put(subscriptionKey(sub.id), encodeSubscription(sub))
  }

  private saveLink(sub: Subscription, link: Link): MaybePromise<void> {
    return this.options.engine.controls.put(linkKey(sub.id, link.path), encodeLink(sub, link))
  }

  /** Live: stored now (failures logged: the next change stores the link again); replay:
   * stored by start(). */
  private persistLink(sub: Subscription, link: Link): void {
    if (this.unsaved !== undefined) this.unsaved.push([sub, link])
    else void Promise.resolve(this.saveLink(sub, link)).catch(reportWriteError)
  }
}

function linkType(link: Link): 'glob' | 'explicit' {
  return link.explicit ? 'explicit' : 'glob'
}

function offsetOf(position: number): string {
  return position < 0 ? '-1' : formatOffset(position)
}

/** `value` once every write is durable (synchronously when all already are). */
function andAll<R>(writes: ReadonlyArray<MaybePromise<unknown>>, value: () => R): MaybePromise<R> {
  const settled = all([...writes])
  return settled instanceof Promise ? settled.then(value) : value()
}

function reportWriteError(error: unknown): void {
  log.error({ err: error }, `ringstream: a subscription state change was not stored: ${(error as Error).message}`)
}

function reportWakeStreamError(sub: Subscription, error: unknown): void {
  log.warn({ subscription: sub.id, err: error }, `ringstream: wake event not written to ${sub.config.wakeStream} for subscription ${sub.id}: ${(error as Error).message}`)
}
