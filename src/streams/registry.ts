// streams/registry.ts — the map from path to stream, expiry (TTL / Expires-At), deletion
// with soft delete for streams that forks still read through, and cascade cleanup.
// With durable storage the registry holds only the streams in use: the others are in the
// registry store (storage/registry/registry-store.ts) and are loaded on first access through a
// RegistryBacking; the registry records which streams changed or went since the last
// checkpoint, and after a checkpoint lets idle, unchanged streams go from memory again.
// No timer per stream: expiry is checked on access, by a sweep over the streams in memory
// that have an expiry, and by a slower walk over the stored ones.

import { StreamError } from '../protocol/errors.js'
import type { RemovedStream, StreamSnapshot } from '../storage/types.js'
import type { Stream } from './stream.js'
import { log } from '../util/log.js'

/** Streams not in memory: built from the registry store on demand. */
export interface RegistryBacking {
  /** The stored stream with this path / id, built but not registered; undefined if none. */
  loadPath(path: string): Stream | undefined
  loadId(id: number): Stream | undefined
  /** What is stored for `id`, without building a stream (expiry walks). */
  stored(id: number): StreamSnapshot | undefined
  /** Stored ids after `after` of the streams that can expire, in order, up to `limit`. */
  expiringAfter(after: number, limit: number): number[]
  /** Every stored path. */
  paths(): Iterable<string>
}

/** What a checkpoint persists: streams changed since the last one, and those removed. */
export interface RegistryChanges {
  readonly streams: readonly Stream[]
  readonly removed: readonly RemovedStream[]
}

/** Stored streams whose expiry one sweep examines. */
const STORED_SWEEP_BATCH = 1000

export class Registry {
  private readonly streams = new Map<string, Stream>()
  private readonly byId = new Map<number, Stream>()
  private readonly expiring = new Set<Stream>()
  private changed = new Set<Stream>()
  /** The changes a checkpoint took and has not stored yet: such a stream must stay in
   * memory (if the checkpoint fails they are restored into it, and its stored entry is
   * older than what it holds). */
  private storing = new Set<Stream>()
  private removed: RemovedStream[] = []
  /** Removed streams the store may still hold (until a checkpoint commits the removal):
   * never loaded again. */
  private readonly gone = new Set<number>()
  private storedSweepAfter = 0
  private sweepTimer: NodeJS.Timeout | undefined
  /** Off while recovery replays history: expiry must not be judged by today's clock mid-replay. */
  expiryEnabled = true
  /** A sliding TTL counts from no earlier than this (ms): a replica that starts leading sets
   * it to now, since the reads that renewed TTLs on the previous leader were not replicated
   * (a stream then lives up to one TTL longer, never shorter). */
  accessFloorMs = 0
  backing: RegistryBacking | undefined
  /** With a backing: idle streams kept in memory (see evict). */
  residentMax: number | undefined
  private evictAt = 0

  constructor(
    private readonly now: () => number,
    private readonly onRetired: (stream: Stream) => void,
  ) {}

  /** Streams in memory now. */
  get size(): number {
    return this.byId.size
  }

  /** Streams changed since the last checkpoint took its changes. */
  get changedCount(): number {
    return this.changed.size
  }

  startSweeping(intervalMs: number): void {
    this.sweepTimer = setInterval(() => {
      // One stream's failure (a damaged entry, an I/O error) must not end the process.
      try {
        this.sweep()
      } catch (error) {
        log.error({ err: error }, `ringstream: expiry sweep failed (will retry): ${(error as Error).message}`)
      }
    }, intervalMs)
    this.sweepTimer.unref()
  }

  stopSweeping(): void {
    if (this.sweepTimer !== undefined) clearInterval(this.sweepTimer)
    this.sweepTimer = undefined
  }

  /** The registered stream (live or soft-deleted) after applying expiry; undefined if none. */
  find(path: string): Stream | undefined {
    const stream = this.streams.get(path) ?? this.admit(this.backing?.loadPath(path))
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
    if (stream === undefined || stream.deletion !== undefined) throw new StreamError('NOT_FOUND', 'stream not found')
    if (stream.softDeleted) throw new StreamError('GONE', 'stream was deleted')
    return stream
  }

  /** A registered stream (live or soft-deleted) by id; recovery resolves records with it. */
  findById(id: number): Stream | undefined {
    return this.byId.get(id) ?? this.admit(this.backing?.loadId(id))
  }

  /** Removed, with the removal not checkpointed yet: its stored entry must not be loaded
   * (building it would look for a source that may be removed too). */
  isGone(id: number): boolean {
    return this.gone.has(id)
  }

  /** Calls `visit` for every live stream whose path passes `filter`, in memory or stored
   * (stored ones are loaded only when they pass); stops when `visit` returns false. */
  forEachLive(filter: (path: string) => boolean, visit: (stream: Stream) => boolean): void {
    const seen = new Set<string>()
    const resident: Stream[] = []
    for (const [path, stream] of this.streams) if (filter(path)) resident.push(stream)
    for (const stream of resident) {
      seen.add(stream.path)
      if (this.find(stream.path) === stream && !stream.softDeleted && stream.deletion === undefined && !visit(stream)) return
    }
    if (this.backing === undefined) return
    for (const path of this.backing.paths()) {
      if (seen.has(path) || !filter(path)) continue
      const stream = this.find(path)
      if (stream !== undefined && !stream.softDeleted && stream.deletion === undefined && !visit(stream)) return
    }
  }

  /** Registers a new stream (its fork source gains a reference). */
  add(stream: Stream): void {
    this.admit(stream)
    const parent = stream.parent
    if (parent !== undefined) {
      parent.forkRefs++
      if (stream.config.durability !== 'memory') parent.durableForkRefs++
      this.markChanged(parent)
    }
    this.markChanged(stream)
  }

  /** Makes a stream resident: found by path and id, swept for expiry, pinning its source.
   * Reads alone can load any number of streams: past a quarter over the budget, the idle
   * ones go again (the quarter keeps the walk over those that cannot go amortized). */
  private admit(stream: Stream | undefined): Stream | undefined {
    if (stream === undefined) return undefined
    if (this.residentMax !== undefined && this.byId.size >= this.evictAt) {
      this.evict(this.residentMax)
      // Streams that cannot go yet (changed, pinned) are walked again only after another quarter.
      this.evictAt = Math.max(this.residentMax, this.byId.size) + (this.residentMax >> 2)
    }
    this.streams.set(stream.path, stream)
    this.byId.set(stream.id, stream)
    if (stream.parent !== undefined) stream.parent.residentForks++
    if (stream.config.ttlSeconds !== undefined || stream.config.expiresAtMs !== undefined) this.expiring.add(stream)
    // Soft-deleted and read by no fork any more (its forks were memory-class and did not
    // survive a restart): nothing can reach it.
    if (stream.softDeleted && stream.forkRefs === 0) {
      this.remove(stream)
      return undefined
    }
    return stream
  }

  /** The stream's persisted state changed; the next checkpoint writes it. */
  markChanged(stream: Stream): void {
    if (stream.config.durability !== 'memory') this.changed.add(stream)
  }

  /** Hands the changes since the last call to a checkpoint. Streams whose creation is not
   * durable yet stay for the next one. */
  takeChanges(): RegistryChanges {
    const streams: Stream[] = []
    const later = new Set<Stream>()
    for (const stream of this.changed) {
      if (stream.creating) later.add(stream)
      else streams.push(stream)
    }
    const removed = this.removed
    this.changed = later
    this.removed = []
    this.storing = new Set(streams)
    return { streams, removed }
  }

  /** A checkpoint stored these changes: removed streams are out of the store now. */
  committedChanges(changes: RegistryChanges): void {
    this.storing.clear()
    for (const { id } of changes.removed) this.gone.delete(id)
  }

  /** A checkpoint failed: its changes are still to be written. */
  restoreChanges(changes: RegistryChanges): void {
    this.storing.clear()
    for (const stream of changes.streams) if (this.byId.get(stream.id) === stream) this.changed.add(stream)
    this.removed = changes.removed.concat(this.removed)
  }

  /** Lets streams nobody uses leave memory until at most `max` remain (after a checkpoint:
   * what they hold is in the store, their bytes in their files). */
  evict(max: number): void {
    if (this.byId.size <= max) return
    for (const stream of this.byId.values()) {
      if (this.byId.size <= max) return
      if (!this.evictable(stream)) continue
      this.streams.delete(stream.path)
      this.byId.delete(stream.id)
      this.expiring.delete(stream)
      if (stream.parent !== undefined) stream.parent.residentForks--
      stream.log.unload()
    }
  }

  private evictable(stream: Stream): boolean {
    return (
      stream.config.durability !== 'memory' &&
      !this.changed.has(stream) &&
      !this.storing.has(stream) &&
      stream.pins === 0 &&
      stream.residentForks === 0 &&
      stream.waiters === undefined &&
      stream.lastCommit === undefined &&
      stream.deletion === undefined &&
      stream.log.idle
    )
  }

  /** Forgets a stream whose creation failed to commit. */
  discard(stream: Stream): void {
    if (this.streams.get(stream.path) !== stream) return
    this.remove(stream)
    this.onRetired(stream)
  }

  /** A committed DELETE: removes the stream, or soft-deletes it while forks read through
   * it, unless it went meanwhile (expired). */
  retireIfCurrent(stream: Stream): void {
    if (this.streams.get(stream.path) === stream && !stream.softDeleted) this.retire(stream)
  }

  private isExpired(stream: Stream, nowMs: number): boolean {
    return isExpired(stream.config, Math.max(stream.lastAccessMs, this.accessFloorMs), nowMs)
  }

  /** Deletes or expires a stream: soft while forks read through it, otherwise removed. */
  retire(stream: Stream): void {
    this.expiring.delete(stream)
    if (stream.forkRefs > 0) {
      stream.softDeleted = true
      this.markChanged(stream)
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
      this.changed.delete(current)
      if (current.config.durability !== 'memory') {
        this.removed.push({ id: current.id, path: current.path })
        this.gone.add(current.id)
      }
      current.log.release()
      const parent: Stream | undefined = current.parent
      if (parent === undefined) return
      parent.forkRefs--
      parent.residentForks--
      if (current.config.durability !== 'memory') parent.durableForkRefs--
      this.markChanged(parent)
      current = parent.softDeleted && parent.forkRefs === 0 ? parent : undefined
    }
  }

  /** A replica starts leading: it expires streams from now on, sliding TTLs counted from now. */
  expireFromNow(): void {
    this.accessFloorMs = this.now()
    this.expiryEnabled = true
  }

  sweep(): void {
    if (!this.expiryEnabled) return
    const nowMs = this.now()
    for (const stream of this.expiring) {
      if (!stream.softDeleted && this.isExpired(stream, nowMs)) this.retire(stream)
    }
    this.sweepStored(nowMs)
  }

  /** Walks the stored streams that can expire a batch at a time (streams without a TTL or
   * Expires-At cost the sweep nothing); expired ones are loaded and retired. */
  private sweepStored(nowMs: number): void {
    const backing = this.backing
    if (backing === undefined) return
    const ids = backing.expiringAfter(this.storedSweepAfter, STORED_SWEEP_BATCH)
    this.storedSweepAfter = ids.length < STORED_SWEEP_BATCH ? 0 : ids[ids.length - 1]!
    for (const id of ids) {
      if (this.byId.has(id) || this.gone.has(id)) continue
      let saved: StreamSnapshot | undefined
      try {
        saved = backing.stored(id)
      } catch {
        continue // a damaged entry is reported when the stream is used
      }
      if (saved === undefined || saved.softDeleted || !isExpired(saved, Math.max(saved.lastAccessMs, this.accessFloorMs), nowMs)) continue
      const stream = this.findById(id)
      if (stream !== undefined && !stream.softDeleted) this.find(stream.path)
    }
  }
}

function isExpired(config: { readonly ttlSeconds: number | undefined; readonly expiresAtMs: number | undefined }, lastAccessMs: number, nowMs: number): boolean {
  const { ttlSeconds, expiresAtMs } = config
  if (expiresAtMs !== undefined && nowMs >= expiresAtMs) return true
  return ttlSeconds !== undefined && nowMs - lastAccessMs >= ttlSeconds * 1000
}
