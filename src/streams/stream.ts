// streams/stream.ts — one stream's state and its position arithmetic.
// Positions are byte positions in the stream's wire bytes. A fork inherits positions
// [0, base) from its parent (read through, never copied) and stores its own bytes from
// `base` on. The log's boundary indexes (append ends; JSON message ends, on disk for
// durable logs) answer sub-offset forks, JSON-aligned chunking and offset validation;
// lookups of recent positions answer at once, older ones may read an index page.
// State comes in two layers: `staged` (validated, ordered, maybe not yet durable — what
// new requests are checked against) and committed (durable, visible to readers).

import type { ContentType, Durability } from '../protocol/headers.js'
import type { ProducerState } from '../protocol/producer.js'
import type { StreamLog } from '../storage/types.js'
import { type MaybePromise, all, andThen } from '../util/maybe.js'
import type { BoundaryIndex } from '../storage/boundary-index.js'
import type { PendingCommit } from './pending-commit.js'

export interface Waiter {
  /** Called after the stream gained data, closed, or was deleted/expired. */
  wake(stream: Stream): void
}

export interface StreamConfig {
  readonly contentType: ContentType
  readonly json: boolean
  readonly ttlSeconds: number | undefined
  readonly expiresAtMs: number | undefined
  readonly durability: Durability
  /** What the creating PUT asked for; a repeated PUT must ask for the same. */
  readonly requestKey: string
}

export interface AppendSpan {
  readonly start: number
  readonly end: number
}

/** The JSON messages ending inside an append: how many, and the first few ends. */
export interface MessagesWithin {
  readonly count: number
  readonly ends: number[]
}

/** What requests are validated against: includes changes not yet durable. */
export interface StagedState {
  closed: boolean
  producers: Map<string, ProducerState> | undefined
  lastStreamSeq: string | undefined
}

export class Stream {
  lastAccessMs: number
  /** Own bytes that are durable and readable (the log may hold more, staged). */
  committedLength = 0
  closed = false
  producers: Map<string, ProducerState> | undefined
  lastStreamSeq: string | undefined
  readonly staged: StagedState = { closed: false, producers: undefined, lastStreamSeq: undefined }
  /** The latest change handed to storage and not yet settled; undefined when none is. */
  lastCommit: PendingCommit | undefined
  softDeleted = false
  /** A DELETE whose record is not durable yet: the stream is gone to new requests. */
  deletion: Promise<void> | undefined
  /** Live forks reading through this stream; a referenced stream is only soft-deleted. */
  forkRefs = 0
  /** …of them durable (memory-class forks do not survive a restart): what checkpoints keep. */
  durableForkRefs = 0
  /** Forks of this stream in memory now (they point at this object: it must stay). */
  residentForks = 0
  /** Live readers (long-polls, SSE sessions) holding this object: it must stay in memory. */
  pins = 0
  /** Created, and the creation not yet durable: checkpoints leave it out until it is. */
  creating = false
  waiters: Set<Waiter> | undefined

  constructor(
    readonly id: number,
    readonly path: string,
    readonly config: StreamConfig,
    readonly log: StreamLog,
    readonly parent: Stream | undefined,
    readonly base: number,
    nowMs: number,
  ) {
    this.lastAccessMs = nowMs
  }

  /** End of the readable (committed) bytes. */
  get tail(): number {
    return this.base + this.committedLength
  }

  /** End of the staged bytes: where the next append goes. */
  get stagedTail(): number {
    return this.base + this.log.length
  }

  /** Stages bytes as one append. `messageEnds` are relative to `bytes` (JSON only). */
  /** Stages an append (`borrowed`: see StreamLog.append). */
  appendBytes(bytes: Uint8Array, messageEnds?: readonly number[], borrowed = false): void {
    this.log.append(bytes, this.config.json ? messageEnds : undefined, borrowed)
  }

  /** Makes staged bytes up to `stagedEnd` (absolute) readable. */
  commitBytes(stagedEnd: number): void {
    this.committedLength = Math.max(this.committedLength, stagedEnd - this.base)
    this.log.commit(this.committedLength)
  }

  /** Drops everything staged and not committed (a failed commit). */
  rollback(): void {
    this.log.truncate(this.committedLength)
    this.staged.closed = this.closed
    this.staged.producers = this.producers === undefined ? undefined : new Map(this.producers)
    this.staged.lastStreamSeq = this.lastStreamSeq
  }

  /** Bytes [from, to) as parts, stitched across the fork chain; no copies. */
  read(from: number, to: number): MaybePromise<Uint8Array[]> {
    const parts: MaybePromise<Uint8Array[]>[] = []
    // Reads of several logs (a fork and its ancestors) resolve at different times: each
    // must keep its bytes until the last is in (see StreamLog.read).
    this.collect(from, to, parts, from < this.base)
    if (parts.length === 1) return parts[0]!
    return andThen(all(parts), (lists) => lists.flat())
  }

  /** One contiguous copy of [from, to). */
  readCopy(from: number, to: number): MaybePromise<Uint8Array> {
    return andThen(this.read(from, to), (parts) => (parts.length === 1 ? Uint8Array.from(parts[0]!) : Buffer.concat(parts)))
  }

  private collect(from: number, to: number, parts: MaybePromise<Uint8Array[]>[], keep: boolean): void {
    if (from >= to) return
    if (from < this.base) this.parent!.collect(from, Math.min(to, this.base), parts, keep)
    const ownFrom = Math.max(from, this.base)
    if (ownFrom < to) parts.push(this.log.read(ownFrom - this.base, to - this.base, keep))
  }

  private get messages(): BoundaryIndex {
    return this.log.messages!
  }

  /** True when `position` starts a JSON message (or is any position of a byte stream). */
  isBoundary(position: number): MaybePromise<boolean> {
    if (!this.config.json || position === 0 || position === this.base) return true
    if (position < this.base) return this.parent!.isBoundary(position)
    return this.messages.has(position - this.base)
  }

  /** Largest message boundary ≤ limit (JSON streams). */
  floorBoundary(limit: number): MaybePromise<number> {
    if (limit < this.base) return this.parent!.floorBoundary(limit)
    return andThen(this.messages.floor(limit - this.base), (floor) => this.base + (floor ?? 0))
  }

  /** Smallest message boundary > position (JSON streams); position < tail. */
  ceilBoundary(position: number): MaybePromise<number> {
    if (position < this.base) return andThen(this.parent!.ceilBoundary(position), (ceil) => Math.min(ceil, this.base))
    return andThen(this.messages.ceil(position - this.base), (ceil) => (ceil === undefined ? this.tail : this.base + ceil))
  }

  /** End of a read starting at `from` holding at most ~maxBytes, message-aligned for JSON. */
  readEnd(from: number, maxBytes: number): MaybePromise<number> {
    const tail = this.tail
    const limit = from + maxBytes
    if (limit >= tail) return tail
    if (!this.config.json) return limit
    return andThen(this.floorBoundary(limit), (floor) => (floor > from ? floor : this.ceilBoundary(from)))
  }

  /** The append that starts exactly at `position`, clipped to what this stream holds. */
  appendAt(position: number): MaybePromise<AppendSpan | undefined> {
    if (position < this.base) {
      return andThen(this.parent!.appendAt(position), (span) => (span === undefined ? undefined : { start: span.start, end: Math.min(span.end, this.base) }))
    }
    if (position >= this.tail) return undefined
    const own = position - this.base
    const appends = this.log.appends
    // Appends start at the log's start and where earlier appends end.
    return andThen(own === 0 ? true : appends.has(own), (starts) =>
      starts ? andThen(appends.ceil(own), (end) => ({ start: position, end: Math.min(end === undefined ? this.tail : this.base + end, this.tail) })) : undefined,
    )
  }

  /** The JSON messages ending in (start, end] (one append's span, or any range: a fork's
   * read through its ancestors included): their count and the first `max` end positions. */
  messagesWithin(start: number, end: number, max: number): MaybePromise<MessagesWithin> {
    if (start < this.base) {
      const below = this.parent!.messagesWithin(start, Math.min(end, this.base), max)
      if (end <= this.base) return below
      return andThen(below, (head) =>
        andThen(this.messagesWithin(this.base, end, Math.max(0, max - head.ends.length)), (own) => ({ count: head.count + own.count, ends: head.ends.concat(own.ends) })),
      )
    }
    const messages = this.messages
    return andThen(all([messages.rank(start - this.base), messages.rank(end - this.base)]), ([first, last]) => {
      const count = last! - first!
      return andThen(messages.range(first!, Math.min(count, max)), (ends) => ({ count, ends: ends.map((at) => at + this.base) }))
    })
  }
}
