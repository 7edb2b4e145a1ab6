// storage/segments/data-files.ts — what every stream's files share: open descriptors (a bounded
// cache, least recently used first, so idle streams hold none), the read cache's byte
// budget across streams, the pooled read buffers, the index page cache, the sweep that
// writes deferred bytes, the writes held back during replay (and the blocks it reuses), and removing a stream's files.
// One stream's own bytes and indexes are file-log.ts.

import type { Io, IoFile } from '../../io/types.js'
import { type IndexFile, IndexPages } from '../boundary-index.js'
import { ReadBuffers } from './read-buffers.js'
import { ReplayBlocks } from './replay-blocks.js'
import { SEGMENT_BYTES_DEFAULT } from './segments.js'
import { forEachLimited } from '../../util/limited.js'
import { log } from '../../util/log.js'

/** What the shared machinery asks of one stream's log (file-log.ts implements it). */
export interface SweptLog {
  /** Writes its committed, unwritten bytes (and full index pages) to its files. */
  flush(): Promise<void>
  /** Bytes of written data it keeps cached for reads. */
  readonly cachedLength: number
  /** Drops at least `bytes` cached bytes, oldest first (all of them for Infinity); returns
   * how many it dropped. */
  dropCached(bytes: number): number
}

/** The files of one stream: its bytes (segment files), and the indexes of its append and
 * message ends (one file each). */
export type FileKind = 'data' | 'appends' | 'messages'
/** A file written since its last datasync. */
export interface FileRef {
  readonly kind: FileKind
  readonly segment: number
}
const KIND_CODES: Record<FileKind, number> = { data: 0, appends: 1, messages: 2 }
const fileKey = (streamId: number, kind: FileKind, segment: number): number => (streamId * 2 ** 18 + segment) * 4 + KIND_CODES[kind]
/** Index pages kept in memory across all streams (4 KiB each): 4 MiB. */
const INDEX_PAGES_MAX = 1024

interface CachedFile {
  readonly file: Promise<IoFile>
  users: number
}

/** Open data files, least recently used first; only unused files are closed. */
export class DataFiles {
  /** Keyed by (streamId · 2^18 + segment) · 4 + kind code: exact below 2^53. */
  private readonly open = new Map<number, CachedFile>()
  /** Streams whose logs were released (id → data segments); their files go once a
   * checkpoint has stored their removal. */
  readonly released = new Map<number, number>()
  /** Logs holding committed bytes below FLUSH_BYTES, written by the next sweep. */
  private readonly unswept = new Set<SweptLog>()
  private sweepTimer: NodeJS.Timeout | undefined

  readonly readBuffers = new ReadBuffers()
  readonly indexPages = new IndexPages(INDEX_PAGES_MAX)
  /** Logs holding cached bytes, least recently used first. */
  private readonly cached = new Set<SweptLog>()
  private cachedBytes = 0
  /** While replay runs, committed bytes wait in memory (they are in the WAL) until this
   * many wait: replay then reads and decodes without a data-file write per record, and
   * the last of them are written after the server is ready. Undefined when not replaying. */
  private holdBytesMax: number | undefined
  /** Bytes held since the last sweep started. */
  private heldBytes = 0
  /** The writes of the last sweep, until they finish (never rejects). */
  private sweeping: Promise<void> | undefined
  /** While replay runs: staging blocks to reuse. */
  replayBlocks: ReplayBlocks | undefined

  constructor(
    readonly io: Io,
    private readonly pathOf: (streamId: number, kind: FileKind, segment: number) => string,
    private readonly openFilesMax: number,
    private readonly readCacheBytes: number,
    /** Stream bytes per data segment file (see segments.ts); set from the data directory
     * at recovery, before any file is touched. */
    public segmentBytes: number = SEGMENT_BYTES_DEFAULT,
    /** Streams with at most this many bytes keep them in their registry entry, not in a
     * data file (file-log.ts); 0: every stream has a data file. */
    readonly inlineBytesMax = 0,
  ) {}

  /** Reads of written bytes from the cache (hits) and from the files (misses), for metrics. */
  readonly readCounts = { hits: 0, misses: 0 }

  /** Bytes the read cache holds now, across every stream. */
  get readCacheUsed(): number {
    return this.cachedBytes
  }

  /** `log` now caches `added` more bytes (may be 0: a read hit); trims the least recently
   * used logs (possibly `log` itself, from its oldest bytes) back under the budget. */
  touchCache(log: SweptLog, added: number): void {
    this.cached.delete(log)
    this.cached.add(log)
    this.cachedBytes += added
    for (const oldest of this.cached) {
      if (this.cachedBytes <= this.readCacheBytes) return
      this.cachedBytes -= oldest.dropCached(this.cachedBytes - this.readCacheBytes)
      if (oldest.cachedLength === 0) this.cached.delete(oldest)
    }
  }

  forgetCache(log: SweptLog): void {
    if (!this.cached.delete(log)) return
    this.cachedBytes -= log.dropCached(Infinity)
  }

  async use<T>(streamId: number, action: (file: IoFile) => Promise<T>, kind: FileKind = 'data', segment = 0): Promise<T> {
    const key = fileKey(streamId, kind, segment)
    let entry = this.open.get(key)
    if (entry === undefined) {
      // In use before evicting, so the new entry can never be the one closed.
      entry = { file: this.io.open(this.pathOf(streamId, kind, segment), true), users: 1 }
      this.open.set(key, entry)
      this.evict()
    } else {
      this.open.delete(key)
      this.open.set(key, entry)
      entry.users++
    }
    try {
      return await action(await entry.file)
    } finally {
      entry.users--
    }
  }

  /** Until resumeWrites(), data-file writes wait until REPLAY_HELD_BYTES wait. */
  holdWrites(): void {
    this.holdBytesMax = REPLAY_HELD_BYTES
    this.replayBlocks = new ReplayBlocks()
  }

  /** Starts writing what was held, in the background like any sweep. */
  resumeWrites(): void {
    this.holdBytesMax = undefined
    this.heldBytes = 0
    this.replayBlocks = undefined
    this.sweep()
  }

  /** `log` committed `bytes` more; true when they are held rather than written. Held bytes
   * are swept once there are enough, unless the previous sweep is still writing (then
   * replayPause makes replay wait for it). */
  hold(log: SweptLog, bytes: number): boolean {
    if (this.holdBytesMax === undefined) return false
    this.unswept.add(log)
    this.heldBytes += bytes
    this.sweepIfDue()
    return true
  }

  /** Sweeps the held bytes when enough wait and no sweep is writing. */
  private sweepIfDue(): void {
    if (this.holdBytesMax !== undefined && this.heldBytes > this.holdBytesMax && this.sweeping === undefined) this.sweep()
  }

  /** Called by replay before it reads more of the WAL: waits while the held bytes are past
   * their bound and the previous sweep still writes, so staged bytes stay within about two
   * sweeps (the memory replay takes, which the process keeps afterwards) whatever the disk's
   * speed. Undefined when replay need not wait. */
  replayPause(): Promise<void> | undefined {
    if (this.holdBytesMax === undefined || this.heldBytes <= this.holdBytesMax || this.sweeping === undefined) return undefined
    return this.sweeping.then(() => this.sweepIfDue())
  }

  /** Writes `log` within FLUSH_DELAY_MS. */
  deferFlush(log: SweptLog): void {
    this.unswept.add(log)
    if (this.sweepTimer !== undefined) return
    this.sweepTimer = setTimeout(() => {
      this.sweepTimer = undefined
      this.sweep()
    }, FLUSH_DELAY_MS)
    // A pending sweep must not keep a finished process alive; close() flushes everything.
    this.sweepTimer.unref()
  }

  /** Writes every deferred log, SWEEP_WRITES_MAX at a time: ten thousand streams must not
   * queue ten thousand writes ahead of the WAL's next batch. */
  private sweep(): void {
    const logs = [...this.unswept]
    this.unswept.clear()
    this.heldBytes = 0
    const writes = forEachLimited(logs, SWEEP_WRITES_MAX, (log) => log.flush().catch(reportFlushError))
    this.sweeping = writes
    void writes.finally(() => {
      if (this.sweeping === writes) this.sweeping = undefined
    })
  }

  private evict(): void {
    for (const [key, entry] of this.open) {
      if (this.open.size <= this.openFilesMax) return
      if (entry.users > 0) continue
      this.open.delete(key)
      entry.file.then((file) => this.io.close(file)).catch(() => {})
    }
  }

  /** The index file `kind` of a stream, as BoundaryIndex reads and writes it. */
  indexFile(streamId: number, kind: FileKind): IndexFile {
    return {
      cacheKey: `${streamId}.${kind}`,
      read: (buffer, position) => this.use(streamId, (file) => this.io.read(file, buffer, position), kind),
      write: (buffer, position) => this.use(streamId, (file) => this.io.writev(file, [buffer], position, false, true), kind),
    }
  }

  /** Closes and deletes every file of a stream (`segments` data segments, both indexes). */
  async remove(streamId: number, segments: number): Promise<void> {
    const files: FileRef[] = [{ kind: 'appends', segment: 0 }, { kind: 'messages', segment: 0 }]
    for (let segment = 0; segment < segments; segment++) files.push({ kind: 'data', segment })
    for (const { kind, segment } of files) {
      const key = fileKey(streamId, kind, segment)
      const entry = this.open.get(key)
      this.open.delete(key)
      if (entry !== undefined) await this.io.close(await entry.file).catch(() => {})
      await this.io.unlink(this.pathOf(streamId, kind, segment)).catch(() => {})
    }
  }

  async closeAll(): Promise<void> {
    if (this.sweepTimer !== undefined) clearTimeout(this.sweepTimer)
    this.sweepTimer = undefined
    this.unswept.clear()
    const entries = [...this.open.values()]
    this.open.clear()
    for (const entry of entries) await this.io.close(await entry.file).catch(() => {})
  }
}

let flushErrorReported = false
/** A failed data-file write keeps its bytes pending (readable, and in the WAL); the next
 * flush or checkpoint retries it. Reported once, not per append. */
export function reportFlushError(error: unknown): void {
  if (flushErrorReported) return
  flushErrorReported = true
  log.error({ err: error }, `ringstream: writing a stream data file failed (bytes stay in the WAL; will retry): ${(error as Error).message}`)
}

/** Replay writes held bytes once this many wait (see holdWrites): big enough that a sweep
 * writes each busy stream in a few large writes, small enough that replay's staging, at
 * most about twice this plus one WAL read, is a small part of the server's memory. */
const REPLAY_HELD_BYTES = 4 * 1024 * 1024
/** Longest a committed byte waits (in memory, and in the WAL) before its data-file write. */
const FLUSH_DELAY_MS = 1000
/** Data-file writes a sweep keeps in flight at once. */
const SWEEP_WRITES_MAX = 16
