// streams/registry.ts — the map from path to stream, expiry (TTL / Expires-At), deletion
// with soft delete for streams that forks still read through, and cascade cleanup.
// No timer per stream: expiry is checked on access and by one sweep over the streams
// that have an expiry at all.

import { StreamError } from '../protocol/errors.js'
import type { Stream } from './stream.js'

export class Registry {
  private readonly streams = new Map<string, Stream>()
  private readonly byId = new Map<number, Stream>()
  private readonly expiring = new Set<Stream>()
  private sweepTimer: NodeJS.Timeout | undefined
  /** Off while recovery replays history: expiry must not be judged by today's clock mid-replay. */
  expiryEnabled = true

  constructor(
    private readonly now: () => number,
    private readonly onRetired: (stream: Stream) => void,
  ) {}

  get size(): number {
    return this.streams.size
  }

  startSweeping(intervalMs: number): void {
    this.sweepTimer = setInterval(() => this.sweep(), intervalMs)
    this.sweepTimer.unref()
  }

  stopSweeping(): void {
    if (this.sweepTimer !== undefined) clearInterval(this.sweepTimer)
    this.sweepTimer = undefined
  }

  /** The registered stream (live or soft-deleted) after applying expiry; undefined if none. */
  find(path: string): Stream | undefined {
    const stream = this.streams.get(path)
    if (stream === undefined || stream.softDeleted || !this.expiryEnabled) return stream
    if (this.isExpired(stream, this.now())) {
      this.retire(stream)
      return this.streams.get(path)
    }
    return stream
  }

  /** Why a stream a live reader holds is no longer readable (deleted, expired, replaced), if it is not. */
  goneReason(stream: Stream): StreamError | undefined {
    if (stream.softDeleted) return new StreamError('GONE', 'stream was deleted')
    return this.find(stream.path) === stream ? undefined : new StreamError('NOT_FOUND', 'stream was deleted')
  }

  /** A live stream or a StreamError (404 when absent, 410 when soft-deleted). */
  get(path: string): Stream {
    const stream = this.find(path)
    if (stream === undefined) throw new StreamError('NOT_FOUND', 'stream not found')
    if (stream.softDeleted) throw new StreamError('GONE', 'stream was deleted')
    return stream
  }

  /** A registered stream (live or soft-deleted) by id; recovery resolves records with it. */
  findById(id: number): Stream | undefined {
    return this.byId.get(id)
  }

  add(stream: Stream): void {
    this.streams.set(stream.path, stream)
    this.byId.set(stream.id, stream)
    if (stream.parent !== undefined) stream.parent.forkRefs++
    if (stream.config.ttlSeconds !== undefined || stream.config.expiresAtMs !== undefined) this.expiring.add(stream)
  }

  /** Frees soft-deleted streams no fork reads any more (after recovery: forks of memory
   * class do not survive a restart, so their sources may be unreferenced now). */
  collectOrphans(): void {
    for (const stream of [...this.streams.values()]) {
      if (stream.softDeleted && stream.forkRefs === 0) this.remove(stream)
    }
  }

  /** Forgets a stream whose creation failed to commit. */
  discard(stream: Stream): void {
    if (this.streams.get(stream.path) !== stream) return
    this.remove(stream)
    this.onRetired(stream)
  }

  /** DELETE: removes the stream, or soft-deletes it while forks read through it. */
  delete(path: string): void {
    this.retire(this.get(path))
  }

  /** Every registered stream, for shutdown and diagnostics. */
  all(): IterableIterator<Stream> {
    return this.streams.values()
  }

  private isExpired(stream: Stream, nowMs: number): boolean {
    const { ttlSeconds, expiresAtMs } = stream.config
    if (expiresAtMs !== undefined && nowMs >= expiresAtMs) return true
    return ttlSeconds !== undefined && nowMs - stream.lastAccessMs >= ttlSeconds * 1000
  }

  /** Deletes or expires a stream: soft while forks read through it, otherwise removed. */
  retire(stream: Stream): void {
    this.expiring.delete(stream)
    if (stream.forkRefs > 0) {
      stream.softDeleted = true
    } else {
      this.remove(stream)
    }
    this.onRetired(stream)
  }

  /** Frees a stream and walks up the fork chain freeing soft-deleted ancestors nobody reads. */
  private remove(stream: Stream): void {
    let current: Stream | undefined = stream
    while (current !== undefined) {
      if (this.streams.get(current.path) === current) this.streams.delete(current.path)
      this.byId.delete(current.id)
      this.expiring.delete(current)
      current.log.release()
      const parent: Stream | undefined = current.parent
      if (parent === undefined) return
      parent.forkRefs--
      current = parent.softDeleted && parent.forkRefs === 0 ? parent : undefined
    }
  }

  sweep(): void {
    if (!this.expiryEnabled) return
    const nowMs = this.now()
    for (const stream of this.expiring) {
      if (!stream.softDeleted && this.isExpired(stream, nowMs)) this.retire(stream)
    }
  }
}
