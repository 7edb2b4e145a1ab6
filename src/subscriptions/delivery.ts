// subscriptions/delivery.ts — webhook requests (PROTOCOL §7.1): the current wake's body,
// signed (keys.ts), POSTed to the subscription's URL with a timeout and no redirects. A
// 2xx is delivered (`{ "done": true }` acks the wake's snapshot, manager.ts); anything else
// is retried with exponential backoff from 1 s to 60 s, ±20% jitter, the next attempt's
// time persisted so a restart keeps the schedule. At most `inFlightMax` requests run at
// once across all subscriptions, one per subscription; the others queue. Nothing here runs
// on the append path: an append only marks work pending, so a slow or dead receiver costs
// appends nothing and other receivers at most the slot it holds until its timeout.
// A host name is resolved before each attempt and refused if it points at a local address.

import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { log } from '../util/log.js'
import type { SubscriptionKeys } from './keys.js'
import type { SubscriptionManager, WakeDelivery } from './manager.js'
import type { Subscription } from './model.js'
import { hostOf, isDevelopmentHost, isLocalAddress } from './webhook-url.js'

export interface DeliveryOptions {
  readonly manager: SubscriptionManager
  readonly keys: SubscriptionKeys
  /** Webhook requests in flight at once, across all subscriptions. */
  readonly inFlightMax: number
  /** How long one attempt may take, answer included. */
  readonly timeoutMs: number
  readonly now?: () => number
  readonly random?: () => number
}

export const RETRY_DELAY_MS_MIN = 1000
export const RETRY_DELAY_MS_MAX = 60_000
const JITTER = 0.2
/** A receiver's answer is read up to this much (it only says `{ "done": true }` or not). */
const ANSWER_BYTES_MAX = 64 * 1024

type Outcome = { readonly ok: true; readonly done: boolean } | { readonly ok: false; readonly reason: string }

export class WebhookDeliveries implements WakeDelivery {
  private inFlight = 0
  private readonly running = new Set<Subscription>()
  /** Woken again while an attempt for an older wake ran: deliver once it ends. */
  private readonly again = new Set<Subscription>()
  private readonly queue = new Set<Subscription>()
  private readonly timers = new Map<Subscription, NodeJS.Timeout>()
  private stopped = false
  private readonly now: () => number
  private readonly random: () => number
  /** Attempts that failed (metrics). */
  failures = 0
  attempts = 0

  constructor(private readonly options: DeliveryOptions) {
    this.now = options.now ?? Date.now
    this.random = options.random ?? Math.random
  }

  get inFlightCount(): number {
    return this.inFlight
  }

  deliver(sub: Subscription): void {
    if (this.stopped || this.timers.has(sub) || this.queue.has(sub)) return
    if (this.running.has(sub)) return void this.again.add(sub)
    const at = sub.retry?.nextAttemptAtMs
    const wait = at === undefined ? 0 : at - this.now()
    if (wait > 0) return this.later(sub, wait)
    if (this.inFlight < this.options.inFlightMax) void this.attempt(sub)
    else this.queue.add(sub)
  }

  cancel(sub: Subscription): void {
    const timer = this.timers.get(sub)
    if (timer !== undefined) clearTimeout(timer)
    this.timers.delete(sub)
    this.queue.delete(sub)
    this.again.delete(sub)
  }

  stop(): void {
    this.stopped = true
    for (const timer of this.timers.values()) clearTimeout(timer)
    this.timers.clear()
    this.queue.clear()
  }

  private later(sub: Subscription, waitMs: number): void {
    const timer = setTimeout(() => {
      this.timers.delete(sub)
      this.deliver(sub)
    }, waitMs)
    timer.unref()
    this.timers.set(sub, timer)
  }

  private async attempt(sub: Subscription): Promise<void> {
    const { manager } = this.options
    const body = manager.wakeBody(sub)
    const wakeId = sub.wake?.id
    if (body === undefined || wakeId === undefined) return
    this.inFlight++
    this.attempts++
    this.running.add(sub)
    let outcome: Outcome
    try {
      outcome = await this.post(sub.config.webhookUrl!, body)
    } finally {
      this.inFlight--
      this.running.delete(sub)
      this.pump()
    }
    if (outcome.ok) {
      await Promise.resolve(manager.delivered(sub, wakeId, outcome.done)).catch((error: unknown) => {
        log.error({ err: error, subscription: sub.id }, `ringstream: subscription ${sub.id}: delivery not recorded: ${(error as Error).message}`)
      })
    } else if (sub.wake?.id === wakeId && !this.stopped) {
      this.failures++
      const attempts = sub.retry?.attempts ?? 0
      const delay = retryDelayMs(attempts, this.random())
      log.warn({ subscription: sub.id, attempt: attempts + 1, retryInMs: delay }, `ringstream: webhook for subscription ${sub.id} failed (${outcome.reason}); retry in ${delay} ms`)
      manager.deliveryFailed(sub, wakeId, this.now() + delay)
      this.again.delete(sub)
      return this.later(sub, delay)
    }
    if (this.again.delete(sub)) this.deliver(sub)
  }

  private pump(): void {
    for (const sub of this.queue) {
      if (this.inFlight >= this.options.inFlightMax) return
      this.queue.delete(sub)
      void this.attempt(sub)
    }
  }

  private async post(url: string, body: string): Promise<Outcome> {
    try {
      const refused = await refusedTarget(new URL(url))
      if (refused !== undefined) return { ok: false, reason: refused }
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'webhook-signature': this.options.keys.signatureHeader(body, this.now()) },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.options.timeoutMs),
      })
      if (response.status < 200 || response.status > 299) {
        await response.body?.cancel()
        return { ok: false, reason: `HTTP ${response.status}` }
      }
      return { ok: true, done: await answerSaysDone(response) }
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause?.code
      return { ok: false, reason: cause ?? (error as Error).message }
    }
  }
}

/** 1 s, 2 s, 4 s … up to 60 s, each ±20%. */
export function retryDelayMs(failedBefore: number, random: number): number {
  const base = Math.min(RETRY_DELAY_MS_MIN * 2 ** Math.min(failedBefore, 16), RETRY_DELAY_MS_MAX)
  return Math.round(base * (1 - JITTER + 2 * JITTER * random))
}

/** Why a URL's host may not be reached now (it resolves to a local address), if it may not. */
async function refusedTarget(url: URL): Promise<string | undefined> {
  const host = hostOf(url)
  if (isIP(host) !== 0 || (url.protocol === 'http:' && isDevelopmentHost(host))) return undefined
  const addresses = await lookup(host, { all: true })
  const local = addresses.find((each) => isLocalAddress(each.address))
  return local === undefined ? undefined : `${host} resolves to a local address (${local.address})`
}

async function answerSaysDone(response: Response): Promise<boolean> {
  const length = Number(response.headers.get('content-length') ?? 0)
  if (length > ANSWER_BYTES_MAX) {
    await response.body?.cancel()
    return false
  }
  const text = await response.text()
  if (text.length === 0 || text.length > ANSWER_BYTES_MAX) return false
  try {
    return (JSON.parse(text) as { done?: unknown } | null)?.done === true
  } catch {
    return false
  }
}
