// streams/stream.ts — one stream's state and its position arithmetic.
// Positions are byte positions in the stream's wire bytes. A fork inherits positions
// [0, base) from its parent (read through, never copied) and stores its own bytes from
// `base` on. Boundary indexes (append starts; JSON message ends) make sub-offset forks,
// JSON-aligned chunking and offset validation binary searches instead of scans.
// State comes in two layers: `staged` (validated, ordered, maybe not yet durable — what
// new requests are checked against) and committed (durable, visible to readers).

import type { ContentType, Durability } from '../protocol/headers.js'
import type { ProducerState } from '../protocol/producer.js'
import type { StreamLog } from '../storage/types.js'
import { type MaybePromise, all, andThen } from '../util/maybe.js'

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

/** Index of the first element > value in a sorted array. */
function upperBound(sorted: number[], value: number): number {
  let lo = 0
  let hi = sorted.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (sorted[mid]! <= value) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** What requests are validated against: includes changes not yet durable. */
export interface StagedState {
  closed: boolean
  producers: Map<string, ProducerState> | undefined
  lastStreamSeq: string | undefined
}

export class Stream {
  readonly appendStarts: number[] = []
  /** JSON streams: absolute end position (after the ',') of every own message. */
  readonly messageEnds: number[] | undefined
  lastAccessMs: number
  /** Own bytes that are durable and readable (the log may hold more, staged). */
  committedLength = 0
  closed = false
  producers: Map<string, ProducerState> | undefined
  lastStreamSeq: string | undefined
  readonly staged: StagedState = { closed: false, producers: undefined, lastStreamSeq: undefined }
  /** The latest change handed to storage and not yet settled; undefined when none is. */
  lastCommit: Promise<unknown> | undefined
  softDeleted = false
  /** Live forks reading through this stream; a referenced stream is only soft-deleted. */
  forkRefs = 0
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
    this.messageEnds = config.json ? [] : undefined
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
  appendBytes(bytes: Uint8Array, messageEnds?: readonly number[]): void {
    const start = this.stagedTail
    this.appendStarts.push(start)
    this.log.append(bytes)
    if (this.messageEnds !== undefined && messageEnds !== undefined) {
      for (const end of messageEnds) this.messageEnds.push(start + end)
    }
  }

  /** Makes staged bytes up to `stagedEnd` (absolute) readable. */
  commitBytes(stagedEnd: number): void {
    this.committedLength = Math.max(this.committedLength, stagedEnd - this.base)
    this.log.commit(this.committedLength)
  }

  /** Drops everything staged and not committed (a failed commit). */
  rollback(): void {
    this.log.truncate(this.committedLength)
    const tail = this.tail
    while (this.appendStarts.length > 0 && this.appendStarts[this.appendStarts.length - 1]! >= tail) this.appendStarts.pop()
    const ends = this.messageEnds
    while (ends !== undefined && ends.length > 0 && ends[ends.length - 1]! > tail) ends.pop()
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

  /** True when `position` starts a JSON message (or is any position of a byte stream). */
  isBoundary(position: number): boolean {
    if (this.messageEnds === undefined || position === 0 || position === this.base) return true
    if (position < this.base) return this.parent!.isBoundary(position)
    const i = upperBound(this.messageEnds, position) - 1
    return i >= 0 && this.messageEnds[i] === position
  }

  /** Largest message boundary ≤ limit (JSON streams). */
  floorBoundary(limit: number): number {
    if (limit < this.base) return this.parent!.floorBoundary(limit)
    const ends = this.messageEnds!
    const i = upperBound(ends, limit) - 1
    return i >= 0 ? ends[i]! : this.base
  }

  /** Smallest message boundary > position (JSON streams); position < tail. */
  ceilBoundary(position: number): number {
    if (position < this.base) return Math.min(this.parent!.ceilBoundary(position), this.base)
    const ends = this.messageEnds!
    const i = upperBound(ends, position)
    return i < ends.length ? ends[i]! : this.tail
  }

  /** End of a read starting at `from` holding at most ~maxBytes, message-aligned for JSON. */
  readEnd(from: number, maxBytes: number): number {
    const tail = this.tail
    const limit = from + maxBytes
    if (limit >= tail) return tail
    if (this.messageEnds === undefined) return limit
    const floor = this.floorBoundary(limit)
    return floor > from ? floor : this.ceilBoundary(from)
  }

  /** The append that starts exactly at `position`, clipped to what this stream holds. */
  appendAt(position: number): AppendSpan | undefined {
    if (position < this.base) {
      const span = this.parent!.appendAt(position)
      return span === undefined ? undefined : { start: span.start, end: Math.min(span.end, this.base) }
    }
    if (position >= this.tail) return undefined
    const i = upperBound(this.appendStarts, position) - 1
    if (i < 0 || this.appendStarts[i] !== position) return undefined
    const end = Math.min(i + 1 < this.appendStarts.length ? this.appendStarts[i + 1]! : this.tail, this.tail)
    return { start: position, end }
  }

  /** End positions of the JSON messages inside [start, end), across the fork chain. */
  messageEndsWithin(start: number, end: number): number[] {
    const found: number[] = []
    let at = start
    while (at < end) {
      at = this.ceilBoundary(at)
      if (at > end) break
      found.push(at)
    }
    return found
  }
}
