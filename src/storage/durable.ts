// storage/durable.ts — the durable storage engine: every change is a WAL record (group
// commit; fsync-class changes are acknowledged after datasync, buffered-class after the
// write), stream bytes go to per-stream data and index files after their record commits,
// and periodic checkpoints sync the files of the streams that changed, store those
// streams in the registry store (registry-store.ts) with the WAL position, and retire
// covered WAL segments. Startup = open the store + replay the WAL after its position
// (storage/wal/wal-reader.ts); streams are loaded from the store when first used.

import type { Io } from '../io/types.js'
import type { Durability } from '../protocol/headers.js'
import { DataFiles, type FileRef } from './segments/data-files.js'
import { FileLog, INLINE_BYTES_DEFAULT } from './segments/file-log.js'
import { forEachLimited } from '../util/limited.js'
import { MemoryLog } from './memory.js'
import { type DataPaths, dataPaths, segmentBase } from './paths.js'
import type { RegistryStore } from './registry/registry-store.js'
import type { Change, EngineSnapshot, LogShape, Storage, StreamLog } from './types.js'
import { preallocate, WalWriter } from './wal/wal.js'
import { WalCorruptionError, replayWal } from './wal/wal-reader.js'
import { type WalRecord, encodeRecord } from './wal/wal-record.js'
import { log } from '../util/log.js'

export interface DurableOptions {
  readonly io: Io
  readonly dataDir: string
  readonly walSegmentBytes: number
  readonly checkpointIntervalMs: number
  readonly checkpointWalBytes: number
  readonly openFilesMax: number
  readonly readCacheBytes: number
  /** Stream bytes per data segment file. */
  readonly segmentBytes: number
  /** Streams of at most this many bytes keep them in their registry entry instead of a
   * data file (storage/segments/file-log.ts); default INLINE_BYTES_DEFAULT, 0: never. */
  readonly inlineBytesMax?: number
  readonly salvage: boolean
  /** Checkpoint as soon as this many streams changed (bounds the streams held in memory
   * because their state is not stored yet). */
  readonly checkpointChangedStreams: number
  /** Opens the registry store in this directory (lmdb; the simulator's own in tests). */
  openRegistry(dir: string): Promise<RegistryStore>
  /** Free bytes on the data directory's file system (statfs); undefined: not checked (the
   * simulator fails writes with ENOSPC itself). */
  freeBytes?(): Promise<number>
  /** Bytes the WAL leaves free when it takes a segment (see wal.ts). */
  readonly diskReserveBytes: number
  /** Told each WAL batch written (metrics): records, bytes, seconds of a synced write. */
  onWalBatch?(records: number, bytes: number, syncSeconds: number | undefined): void
}

/** While the disk is full: how often a checkpoint is tried (it writes what waits, removes
 * deleted streams' files and retired WAL segments) and the free space looked at again. */
const DISK_FULL_RETRY_MS = 1000

/** The engine side of recovery and checkpoints (streams/recovery.ts). */
export interface RecoveryTarget {
  /** Streams not in memory are looked up in `store` from now on. */
  attach(store: RegistryStore, salvage: boolean): void
  apply(record: WalRecord): void
  /** What changed since the last snapshot (synchronous: it matches the WAL's position). */
  snapshot(): EngineSnapshot
  changedCount(): number
  /** After a stored checkpoint: lets idle streams leave memory. */
  evict(): void
}

export interface RecoveryReport {
  readonly checkpointLsn: number
  readonly records: number
  readonly droppedBytes: number
  readonly ms: number
}

export class DurableStorage implements Storage {
  readonly kind = 'wal'
  private readonly paths: DataPaths
  private readonly files: DataFiles
  private store: RegistryStore | undefined
  private wal: WalWriter | undefined
  private target: RecoveryTarget | undefined
  private lastCheckpointLsn = 0
  private checkpointing: Promise<void> | undefined
  private timer: NodeJS.Timeout | undefined
  private fullTimer: NodeJS.Timeout | undefined

  constructor(private readonly options: DurableOptions) {
    this.paths = dataPaths(options.dataDir)
    this.files = new DataFiles(options.io, (id, kind, segment) => this.paths.streamFile(id, kind, segment), options.openFilesMax, options.readCacheBytes, options.segmentBytes, options.inlineBytesMax ?? INLINE_BYTES_DEFAULT)
  }

  createLog(streamId: number, durability: Durability, shape: LogShape): StreamLog {
    if (durability === 'memory') return new MemoryLog(shape.messages !== undefined)
    return new FileLog(this.files, streamId, shape)
  }

  /** Loads the checkpoint, replays the WAL, and readies the writer. Call once, first. */
  async recover(target: RecoveryTarget): Promise<RecoveryReport> {
    const started = performance.now()
    const { io } = this.options
    this.target = target
    await io.mkdirp(this.paths.walDir)
    await io.mkdirp(this.paths.streamsDir)
    await io.syncDir(this.paths.root)
    if ((await io.list(this.paths.root)).includes('checkpoint.json')) {
      throw new WalCorruptionError(
        `${this.paths.root} was written by ringstream 0.1 (checkpoint.json, checkpoint format 1); this ringstream keeps its registry in ${this.paths.registry} (registry format 1) and does not convert: start ringstream 0.1 on it and copy the streams out, or use a new --data-dir`,
      )
    }
    const store = await this.options.openRegistry(this.paths.registry)
    this.store = store
    // A new directory records its segment size before any byte is written under it.
    if (store.meta === undefined) await store.commit([], [], { lsn: 0, nextStreamId: 1, segmentBytes: this.options.segmentBytes })
    this.files.segmentBytes = store.meta!.segmentBytes
    target.attach(store, this.options.salvage)
    const fromLsn = store.meta!.lsn
    let records = 0
    this.files.holdWrites()
    const tail = await replayWal(io, this.paths, fromLsn, this.options.salvage, (record) => {
      target.apply(record)
      records++
    }, undefined, () => this.files.replayPause())
    // Replayed bytes are readable from memory and in the WAL: written after ready.
    this.files.resumeWrites()
    const segment =
      tail === undefined
        ? { file: await preallocate(io, this.paths.walSegment(fromLsn), this.options.walSegmentBytes), baseLsn: fromLsn, capacity: this.options.walSegmentBytes, position: 0 }
        : { file: tail.file, baseLsn: tail.baseLsn, capacity: tail.capacity, position: tail.position }
    if (tail === undefined) await io.syncDir(this.paths.walDir)
    this.wal = new WalWriter(io, this.paths, this.options.walSegmentBytes, segment, (bytes) => this.mayTake(bytes))
    this.wal.onFull = () => this.whileFull()
    const onWalBatch = this.options.onWalBatch
    if (onWalBatch !== undefined) this.wal.onBatchWritten = (records, bytes, syncSeconds) => onWalBatch.call(this.options, records, bytes, syncSeconds)
    this.wal.prepareSpare()
    this.lastCheckpointLsn = fromLsn
    this.wal.onBatch = (lsn) => {
      if (this.checkpointing !== undefined) return
      if (lsn - this.lastCheckpointLsn >= this.options.checkpointWalBytes || target.changedCount() >= this.options.checkpointChangedStreams) {
        setImmediate(() => void this.checkpoint().catch(reportCheckpointError))
      }
    }
    this.timer = setInterval(() => {
      // Changes with no WAL record count too: a sliding TTL renewed by reads alone is kept
      // only by checkpoints, so after a crash it goes back by at most one interval.
      if (this.wal !== undefined && (this.wal.lsn > this.lastCheckpointLsn || target.changedCount() > 0)) void this.checkpoint().catch(reportCheckpointError)
    }, this.options.checkpointIntervalMs)
    this.timer.unref()
    return { checkpointLsn: fromLsn, records, droppedBytes: tail?.droppedBytes ?? 0, ms: performance.now() - started }
  }

  commit(change: Change, durability: Durability, timeMs: number): Promise<number> | undefined {
    if (durability === 'memory') return undefined
    if (this.wal === undefined) throw new Error('durable storage used before recovery')
    return this.wal.append(encodeRecord(change, timeMs), durability === 'fsync', change.kind === 'delete')
  }

  /** Reads of written bytes served from the read cache, and from the data files. */
  get readCounts(): { readonly hits: number; readonly misses: number } {
    return this.files.readCounts
  }

  /** True from a refused WAL roll until the free space is back above segment + reserve. */
  get diskFull(): boolean {
    return this.fullTimer !== undefined
  }

  private async mayTake(bytes: number): Promise<boolean> {
    const { freeBytes, diskReserveBytes } = this.options
    return freeBytes === undefined || (await freeBytes.call(this.options)) >= bytes + diskReserveBytes
  }

  /** The disk is full: checkpoints every DISK_FULL_RETRY_MS free what they can, until a new
   * WAL segment fits beside the reserve again; appends resume then by themselves. */
  private whileFull(): void {
    if (this.fullTimer !== undefined) return
    log.warn({ diskFull: true }, 'ringstream: disk full: appends are refused (507) until space is freed; reads and deletes go on')
    this.fullTimer = setInterval(() => {
      void (async () => {
        if (this.checkpointing === undefined && this.wal !== undefined) await this.checkpoint().catch(() => {})
        if (this.fullTimer === undefined || !(await this.mayTake(this.options.walSegmentBytes))) return
        clearInterval(this.fullTimer)
        this.fullTimer = undefined
        this.wal?.prepareSpare()
        log.info({ diskFull: false }, 'ringstream: disk space is back: appends resume')
      })()
    }, DISK_FULL_RETRY_MS)
    this.fullTimer.unref()
  }

  /** Persists the registry as of the current LSN, syncs data files, retires WAL segments. */
  checkpoint(): Promise<void> {
    this.checkpointing ??= this.runCheckpoint().finally(() => {
      this.checkpointing = undefined
    })
    return this.checkpointing
  }

  private async runCheckpoint(): Promise<void> {
    const { io } = this.options
    const { wal, target, store } = this
    if (wal === undefined || target === undefined || store === undefined) return
    // Taken together, synchronously: the changes reflect exactly the records up to lsn.
    const lsn = wal.lsn
    const state = target.snapshot()
    const released = [...this.files.released]
    try {
      await syncAll(io, this.paths.streamsDir, state.logs)
      await store.commit(state.streams, state.removed, { lsn, nextStreamId: state.nextStreamId, segmentBytes: this.files.segmentBytes }, state.controls)
    } catch (error) {
      state.restore()
      throw error
    }
    state.stored()
    this.lastCheckpointLsn = lsn
    await this.retireSegments(lsn, wal.currentSegmentBase)
    for (const [id, segments] of released) {
      this.files.released.delete(id)
      await this.files.remove(id, segments)
    }
    target.evict()
  }

  private async retireSegments(lsn: number, currentBase: number): Promise<void> {
    const { io } = this.options
    const bases = (await io.list(this.paths.walDir))
      .map(segmentBase)
      .filter((base): base is number => base !== undefined)
      .sort((a, b) => a - b)
    let removed = false
    for (let i = 0; i + 1 < bases.length; i++) {
      const next = bases[i + 1]!
      if (next > lsn || bases[i]! >= currentBase) break
      await io.unlink(this.paths.walSegment(bases[i]!))
      removed = true
    }
    if (removed) await io.syncDir(this.paths.walDir)
  }

  async close(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer)
    if (this.fullTimer !== undefined) clearInterval(this.fullTimer)
    this.fullTimer = undefined
    if (this.wal === undefined) return
    await this.wal.close().catch(() => {})
    await this.checkpoint().catch(reportCheckpointError)
    await this.files.closeAll()
    await this.store?.close()
    this.wal = undefined
  }
}

/** Streams whose files a checkpoint syncs at once: a thousand changed streams must not be
 * a thousand sequential write + datasync round trips; the file system's journal commits
 * concurrent syncs together. */
const CHECKPOINT_SYNCS_MAX = 64

/** From this many changed streams on, a checkpoint writes their files and makes them
 * durable with one Io.syncFs where the backend has it: a datasync per file cost the event
 * loop 30–60 µs each here (1,000 streams: 30–60 ms, and a reopen for files closed since),
 * syncfs nothing. Below it, syncing the few files is cheaper than syncing the file system. */
const SYNCFS_STREAMS_MIN = 16

/** Makes the changed logs' files durable, directory entries of new files included. */
async function syncAll(io: Io, streamsDir: string, logs: readonly StreamLog[]): Promise<void> {
  const fileLogs = logs.filter((log): log is FileLog => log instanceof FileLog)
  if (io.syncFs === undefined || fileLogs.length < SYNCFS_STREAMS_MIN) {
    await forEachLimited(fileLogs, CHECKPOINT_SYNCS_MAX, (log) => log.sync())
    await io.syncDir(streamsDir)
    return
  }
  const handed: Array<{ log: FileLog; written: readonly FileRef[] }> = []
  try {
    await forEachLimited(fileLogs, CHECKPOINT_SYNCS_MAX, async (log) => {
      const written = await log.writeOut()
      if (written.length > 0) handed.push({ log, written })
    })
    // Inline streams (and streams whose files are synced) wrote nothing to make durable.
    if (handed.length > 0) await io.syncFs(streamsDir)
  } catch (error) {
    for (const { log, written } of handed) log.syncFailed(written)
    throw error
  }
}

function reportCheckpointError(error: unknown): void {
  log.error({ err: error }, `ringstream: checkpoint failed (will retry): ${(error as Error).message}`)
}
