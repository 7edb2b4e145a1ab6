// subscriptions/model.ts — what a subscription is: its configuration (validated from the
// PUT body, PROTOCOL §6.2), its stream links with their cursors, its wake (generation,
// snapshot, lease), and how each is stored as a control record (streams/controls.ts):
//   sub/<id>          → the subscription: configuration, generation, wake, retry schedule
//   sub/<id>/<path>   → one link: [incarnation, stream id, acked position, explicit]
// A link's key sorts right after its subscription's, so a checkpoint's values come back
// subscription first. The incarnation (a nonce per creation) keeps links of a deleted
// subscription from attaching to a new one of the same id; the stream id keeps a cursor
// from applying to a later stream of the same path.

import { createHash, randomBytes } from 'node:crypto'
import { StreamError, badRequest } from '../protocol/errors.js'
import { validateStreamPath } from '../protocol/path.js'
import { type Glob, compileGlob, patternProblem } from './glob.js'

export type SubscriptionType = 'webhook' | 'pull-wake'

export const LEASE_TTL_MS_DEFAULT = 30_000
export const LEASE_TTL_MS_MIN = 1000
export const LEASE_TTL_MS_MAX = 10 * 60_000

export interface SubscriptionConfig {
  readonly type: SubscriptionType
  readonly pattern: string | undefined
  /** Explicit streams, normalized, sorted, unique. */
  readonly streams: readonly string[]
  readonly webhookUrl: string | undefined
  readonly wakeStream: string | undefined
  readonly leaseTtlMs: number
  readonly description: string | undefined
}

export interface Link {
  readonly path: string
  explicit: boolean
  /** The stream `acked` refers to; 0 before the link saw a stream. */
  streamId: number
  /** Where the next read starts (the last acked offset); -1 before the first byte. */
  acked: number
  /** A stream another node holds (cluster-wide subscriptions): which of the other nodes
   * reported it, and its tail as last reported. Not stored: reported again on every
   * (re)connection. */
  remote?: { source: number; tail: number }
}

export interface Wake {
  readonly id: string
  readonly generation: number
  /** The pending streams and their tails when the wake was issued (or claimed): what a
   * webhook's `{ "done": true }` acks. */
  snapshot: Array<[string, number]>
  /** Pull-wake: the worker holding the lease. */
  holder: string | undefined
  /** When the lease ends (webhook: from the wake's issue; pull-wake: from the claim). */
  leaseUntilMs: number | undefined
}

export interface Retry {
  readonly attempts: number
  readonly nextAttemptAtMs: number
}

export class Subscription {
  readonly links = new Map<string, Link>()
  /** Paths of links with bytes beyond their cursor (derived; rebuilt at startup). */
  readonly pending = new Set<string>()
  generation = 0
  wake: Wake | undefined
  retry: Retry | undefined
  readonly glob: Glob | undefined

  constructor(
    readonly id: string,
    /** A nonce per creation: tokens and links name it. */
    readonly incarnation: string,
    readonly config: SubscriptionConfig,
    readonly hash: string,
    readonly createdAtMs: number,
  ) {
    this.glob = config.pattern === undefined ? undefined : compileGlob(config.pattern)
  }

  get subject(): string {
    return `${this.id}:${this.incarnation}`
  }
}

export function newIncarnation(): string {
  return randomBytes(9).toString('base64url')
}

export function newWakeId(): string {
  return `w_${randomBytes(12).toString('base64url')}`
}

/** A subscription id: what fits in a URL segment and a control key without escaping. */
const ID_PATTERN = /^[A-Za-z0-9._~:@-]{1,200}$/

export function checkSubscriptionId(id: string): void {
  if (!ID_PATTERN.test(id)) throw badRequest('subscription id must be 1-200 characters of A-Z a-z 0-9 . _ ~ : @ -')
}

/** A stream-root-relative path from a request body, normalized as the spec does (no
 * leading or trailing '/'), validated like a URL's. */
export function streamPathOf(value: unknown, field: string, bytesMax: number): string {
  if (typeof value !== 'string') throw badRequest(`${field} must be a string stream path`)
  const path = value.replace(/^\/+/, '').replace(/\/+$/, '')
  try {
    validateStreamPath(path, bytesMax)
  } catch (error) {
    throw badRequest(`${field}: ${(error as Error).message}`)
  }
  if (path === '__ds' || path.startsWith('__ds/')) throw badRequest(`${field}: paths under __ds/ are reserved`)
  return path
}

export function streamListOf(value: unknown, field: string, bytesMax: number, countMax: number): string[] {
  if (!Array.isArray(value)) throw badRequest(`${field} must be an array of stream paths`)
  if (value.length > countMax) throw badRequest(`${field} lists more than ${countMax} streams`)
  return [...new Set(value.map((each, i) => streamPathOf(each, `${field}[${i}]`, bytesMax)))].sort()
}

/** The PUT body as a configuration, or a 400 saying what is wrong. */
export function parseConfig(body: unknown, bytesMax: number, streamsMax: number): SubscriptionConfig {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('subscription body must be a JSON object')
  const input = body as Record<string, unknown>
  const type = input.type
  if (type !== 'webhook' && type !== 'pull-wake') throw badRequest('type must be "webhook" or "pull-wake"')
  let pattern: string | undefined
  if (input.pattern !== undefined && input.pattern !== null) {
    if (typeof input.pattern !== 'string') throw badRequest('pattern must be a string')
    pattern = input.pattern
    const problem = patternProblem(pattern)
    if (problem !== undefined) throw badRequest(problem)
  }
  const streams = input.streams === undefined || input.streams === null ? [] : streamListOf(input.streams, 'streams', bytesMax, streamsMax)
  if (pattern === undefined && streams.length === 0) throw badRequest('a subscription needs a pattern or streams')
  let webhookUrl: string | undefined
  let wakeStream: string | undefined
  if (type === 'webhook') {
    const webhook = input.webhook as { url?: unknown } | undefined
    if (typeof webhook !== 'object' || webhook === null || typeof webhook.url !== 'string') throw badRequest('webhook subscriptions need webhook.url')
    webhookUrl = webhook.url
  } else {
    wakeStream = streamPathOf(input.wake_stream, 'wake_stream', bytesMax)
    if (streams.includes(wakeStream) || (pattern !== undefined && compileGlob(pattern).matches(wakeStream))) {
      throw badRequest('wake_stream must not be one of the streams the subscription watches (each wake would wake it again)')
    }
  }
  const leaseTtlMs = input.lease_ttl_ms ?? LEASE_TTL_MS_DEFAULT
  if (typeof leaseTtlMs !== 'number' || !Number.isInteger(leaseTtlMs) || leaseTtlMs < LEASE_TTL_MS_MIN || leaseTtlMs > LEASE_TTL_MS_MAX) {
    throw badRequest(`lease_ttl_ms must be an integer from ${LEASE_TTL_MS_MIN} to ${LEASE_TTL_MS_MAX}`)
  }
  const description = input.description ?? undefined
  if (description !== undefined && (typeof description !== 'string' || description.length > 1024)) throw badRequest('description must be a string of at most 1024 characters')
  return { type, pattern, streams, webhookUrl, wakeStream, leaseTtlMs, description }
}

/** The hash a re-confirming PUT must match (PROTOCOL §6.2): the normalized configuration. */
export function configHash(config: SubscriptionConfig): string {
  const canonical = [config.type, config.pattern ?? null, config.streams, config.webhookUrl ?? null, config.wakeStream ?? null, config.leaseTtlMs, config.description ?? null]
  return createHash('sha256').update(JSON.stringify(canonical)).digest('base64url')
}

export const SUBSCRIPTION_KEY_PREFIX = 'sub/'

export function subscriptionKey(id: string): string {
  return `${SUBSCRIPTION_KEY_PREFIX}${id}`
}

export function linkKey(id: string, path: string): string {
  return `${SUBSCRIPTION_KEY_PREFIX}${id}/${path}`
}

/** A control key's subscription id and, for a link, its path. */
export function parseKey(key: string): { readonly id: string; readonly path: string | undefined } | undefined {
  if (!key.startsWith(SUBSCRIPTION_KEY_PREFIX)) return undefined
  const rest = key.slice(SUBSCRIPTION_KEY_PREFIX.length)
  const slash = rest.indexOf('/')
  return slash < 0 ? { id: rest, path: undefined } : { id: rest.slice(0, slash), path: rest.slice(slash + 1) }
}

interface StoredSubscription {
  readonly n: string
  readonly c: SubscriptionConfig
  readonly h: string
  readonly t: number
  readonly g: number
  readonly w: Wake | null
  readonly r: Retry | null
}

export function encodeSubscription(sub: Subscription): string {
  const stored: StoredSubscription = { n: sub.incarnation, c: sub.config, h: sub.hash, t: sub.createdAtMs, g: sub.generation, w: sub.wake ?? null, r: sub.retry ?? null }
  return JSON.stringify(stored)
}

export function decodeSubscription(id: string, value: string): Subscription {
  const stored = JSON.parse(value) as StoredSubscription
  const sub = new Subscription(id, stored.n, stored.c, stored.h, stored.t)
  sub.generation = stored.g
  sub.wake = stored.w ?? undefined
  sub.retry = stored.r ?? undefined
  return sub
}

export function encodeLink(sub: Subscription, link: Link): string {
  return JSON.stringify([sub.incarnation, link.streamId, link.acked, link.explicit ? 1 : 0])
}

/** The link a stored value describes, or undefined when it belongs to another incarnation. */
export function decodeLink(sub: Subscription, path: string, value: string): Link | undefined {
  const [incarnation, streamId, acked, explicit] = JSON.parse(value) as [string, number, number, number]
  if (incarnation !== sub.incarnation) return undefined
  return { path, streamId, acked, explicit: explicit === 1 }
}

export function notFound(id: string): StreamError {
  return new StreamError('SUBSCRIPTION_NOT_FOUND', `subscription ${id} not found`)
}
