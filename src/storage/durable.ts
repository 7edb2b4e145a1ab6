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
import { type DataPaths, dataPaths } from './paths.js'
import { DISK_BYTES_FULL_BUDGET, type DiskBudget, diskBudget, isScaled } from './disk-budget.js'
import type { RegistryStore } from './registry/registry-store.js'
import type { Change, EngineSnapshot, LogShape, Storage, StreamLog } from './types.js'
import { type OpenSegment, cutWal, preallocate, segmentBases, WalWriter } from './wal/wal.js'
import { WalCorruptionError, replayWal } from './wal/wal-reader.js'
import { FRAME_HEADER_BYTES, type WalRecord, checkFrame, encodeRecord, forEachRecord } from './wal/wal-record.js'
import { type WalFrames, readWalFrames } from './wal/wal-source.js'
import { log } from '../util/log.js'

export interface DurableOptions {
  readonly io: Io
  readonly dataDir: string
  /** WAL segment size, reserve and checkpoint WAL bytes (see DiskBudget); undefined: scaled
   * to the data directory's file system at recover() (disk-budget.ts). */
  readonly walSegmentBytes?: number | undefined
  readonly checkpointIntervalMs: number
  readonly checkpointWalBytes?: number | undefined
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
  /** A recovery that replayed this many records checkpoints at once (see config.ts). */
  readonly checkpointAfterReplayRecords?: number
  /** Opens the registry store in this directory (lmdb; the simulator's own in tests). */
  openRegistry(dir: string): Promise<RegistryStore>
  /** Free bytes on the data directory's file system (statfs); undefined: not checked (the
   * simulator fails writes with ENOSPC itself). */
  freeBytes?(): Promise<number>
  /** The size of the data directory's file system (statfs); undefined: not known (the
   * simulator), and the budget is the one of a disk of 1 GiB or more. */
  diskBytes?(): Promise<number>
  /** Bytes the WAL leaves free when it takes a segment (see wal.ts). */
  readonly diskReserveBytes?: number | undefined
  /** The largest append: a scaled WAL segment holds one (default 16 MiB). */
  readonly appendBytesMax?: number
  /** Told each WAL batch written (metrics): records, bytes, seconds of a synced write. */
  onWalBatch?(records: number, bytes: number, syncSeconds: number | undefined): void
}

/** WAL read at a time when a replica applies batches no longer in memory. */
const APPLY_READ_BYTES = 4 * 1024 * 1024
/** Written batches a replica keeps in memory until applied; beyond, they are read back. */
const PENDING_FRAMES_BYTES_MAX = 64 * 1024 * 1024

/** Batches a replica wrote and has not applied yet, in LSN order, while they fit. */
class PendingFrames {
  private list: Array<{ start: number; bytes: Buffer }> = []
  private bytes = 0

  add(start: number, frames: Buffer): void {
    const last = this.list[this.list.length - 1]
    if (last !== undefined && last.start + last.bytes.length !== start) this.cut(0)
    if (this.bytes + frames.length > PENDING_FRAMES_BYTES_MAX) return this.cut(0)
    this.list.push({ start, bytes: frames })
    this.bytes += frames.length
  }

  /** The kept batches starting exactly at `lsn`. */
  from(lsn: number): Buffer | undefined {
    const head = this.list[0]
    if (head === undefined || head.start > lsn || head.start + head.bytes.length <= lsn) return undefined
    return head.bytes.subarray(lsn - head.start)
  }

  /** Drops what is applied (up to `lsn`). */
  applied(lsn: number): void {
    while (this.list.length > 0 && this.list[0]!.start + this.list[0]!.bytes.length <= lsn) this.bytes -= this.list.shift()!.bytes.length
  }

  /** Drops everything after `lsn` (0: everything, the list is read back from the WAL). */
  cut(lsn: number): void {
    if (lsn === 0 || this.list.some((each) => each.start + each.bytes.length > lsn)) {
      this.list = []
      this.bytes = 0
    }
  }
}

/** Checks every batch of `frames` (a leader's bytes, before they are written here). */
function checkFrames(frames: Buffer): void {
  let at = 0
  while (at < frames.length) {
    const frame = checkFrame(frames, at, frames.length)
    if (frame.kind !== 'ok') throw new WalCorruptionError(`a replicated batch at byte ${at} of ${frames.length} is ${frame.kind === 'bad' ? frame.reason : 'empty'}`)
    at += FRAME_HEADER_BYTES + frame.bodyLength
  }
}

/** While the disk is full: how often a checkpoint is tried (it writes what waits, removes
 * deleted streams' files and retired WAL segments) and the free space looked at again. */
const DISK_FULL_RETRY_MS = 1000
/** The largest append when the options do not say (config.ts's default). */
const APPEND_BYTES_MAX_DEFAULT = 16 * 1024 * 1024

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

/** What a replicated shard's leader adds to acknowledging (cluster/): an append is
 * acknowledged once its batch is on a majority of the shard's replicas. */
export interface AckGate {
  /** Resolves once the log up to `lsn` is on a majority; undefined: it already is. */
  acknowledged(lsn: number): Promise<void> | undefined
  /** Everything up to this LSN is acknowledged (and so applied to committed state). */
  readonly committedLsn: number
  /** The oldest LSN a replica still needs: WAL segments from it on are kept. */
  readonly neededLsn: number
  /** This node's WAL wrote another batch (its own copy counts toward the majority). */
  written(): void
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
  /** A disk-full retry is running (one may outlast the timer's period). */
  private fullRetrying = false
  /** The WAL's sizes: given, or scaled to the disk at recover(). */
  private budget: DiskBudget
  /** Replicated shards: the leader's acknowledgement rule (undefined: the local write is enough). */
  gate: AckGate | undefined
  /** A replica applies records only once it knows they stay (cluster/): everything up to
   * here is applied; beyond it the WAL holds batches that may still be cut. */
  private applied = 0
  /** Records are applied as soon as they are written (a lone node, or a leader). */
  private leading = true
  /** A replica is applying its whole WAL to start leading: no checkpoint may record it. */
  private promoting = false
  private readonly pending = new PendingFrames()
  private applying: Promise<void> = Promise.resolve()
  /** WAL positions kept for replicas copying a snapshot (no segment from them on retires). */
  private readonly holds = new Set<{ readonly lsn: number }>()
  /** Told each batch as its WAL write starts (a leader sends it to its followers meanwhile; cluster/). */
  onWalWriting: ((buffers: readonly Uint8Array[], startLsn: number, endLsn: number, sync: boolean) => void) | undefined
  /** …and when such a batch then failed to be written here. */
  onWalWriteFailed: ((error: unknown) => void) | undefined

  constructor(private readonly options: DurableOptions) {
    this.paths = dataPaths(options.dataDir)
    this.budget = diskBudget(options, undefined, options.appendBytesMax ?? APPEND_BYTES_MAX_DEFAULT)
    this.files = new DataFiles(options.io, (id, kind, segment) => this.paths.streamFile(id, kind, segment), options.openFilesMax, options.readCacheBytes, options.segmentBytes, options.inlineBytesMax ?? INLINE_BYTES_DEFAULT)
  }

  createLog(streamId: number, durability: Durability, shape: LogShape): StreamLog {
    if (durability === 'memory') return new MemoryLog(shape.messages !== undefined)
    return new FileLog(this.files, streamId, shape)
  }

  /** Loads the checkpoint, replays the WAL, and readies the writer. Call once, first.
   * `replica`: the WAL after the checkpoint is only checked, not applied (a replicated
   * node learns from its shard how much of it stays: applyTo, cutTo). */
  async recover(target: RecoveryTarget, replica = false): Promise<RecoveryReport> {
    const started = performance.now()
    const { io } = this.options
    this.target = target
    await io.mkdirp(this.paths.walDir)
    await io.mkdirp(this.paths.streamsDir)
    await io.syncDir(this.paths.root)
    await this.scaleBudget()
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
      records++
      if (!replica) target.apply(record)
    }, undefined, () => this.files.replayPause())
    // A replica tells its shard how far its log goes: all of it must be on disk, not only
    // in the page cache of a process that crashed during a sync.
    if (replica && tail !== undefined) await io.datasync(tail.file)
    // Replayed bytes are readable from memory and in the WAL: written after ready.
    this.files.resumeWrites()
    const segment =
      tail === undefined
        ? { file: await preallocate(io, this.paths.walSegment(fromLsn), this.budget.walSegmentBytes), baseLsn: fromLsn, capacity: this.budget.walSegmentBytes, position: 0 }
        : { file: tail.file, baseLsn: tail.baseLsn, capacity: tail.capacity, position: tail.position }
    if (tail === undefined) await io.syncDir(this.paths.walDir)
    this.openWriter(segment)
    this.lastCheckpointLsn = fromLsn
    this.leading = !replica
    this.applied = replica ? fromLsn : this.wal!.lsn
    this.timer = setInterval(() => {
      // Changes with no WAL record count too: a sliding TTL renewed by reads alone is kept
      // only by checkpoints, so after a crash it goes back by at most one interval.
      if (this.wal !== undefined && (this.wal.lsn > this.lastCheckpointLsn || target.changedCount() > 0)) void this.checkpoint().catch(reportCheckpointError)
    }, this.options.checkpointIntervalMs)
    this.timer.unref()
    // What was replayed is checkpointed soon, not at the next interval: a crash loop would
    // replay it all again at every start.
    if (!replica && records >= (this.options.checkpointAfterReplayRecords ?? Number.POSITIVE_INFINITY)) {
      setImmediate(() => void this.checkpoint().catch(reportCheckpointError))
    }
    return { checkpointLsn: fromLsn, records, droppedBytes: tail?.droppedBytes ?? 0, ms: performance.now() - started }
  }

  /** Sizes what was not given to the data directory's file system, and says so once. */
  private async scaleBudget(): Promise<void> {
    const { options } = this
    const diskBytes = options.diskBytes === undefined ? undefined : await options.diskBytes()
    this.budget = diskBudget(options, diskBytes, options.appendBytesMax ?? APPEND_BYTES_MAX_DEFAULT)
    if (diskBytes === undefined || diskBytes >= DISK_BYTES_FULL_BUDGET || !isScaled(options)) return
    const { walSegmentBytes, diskReserveBytes, checkpointWalBytes } = this.budget
    const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(0)} MiB`
    log.info(
      { diskBytes, walSegmentBytes, diskReserveBytes, checkpointWalBytes },
      `ringstream: a ${mib(diskBytes)} disk: WAL segments of ${mib(walSegmentBytes)}, ${mib(diskReserveBytes)} kept free, a checkpoint every ${mib(checkpointWalBytes)} of WAL (flags not given are scaled to the disk)`,
    )
  }

  private openWriter(segment: OpenSegment): void {
    const wal = new WalWriter(this.options.io, this.paths, this.budget.walSegmentBytes, segment, (bytes) => this.mayTake(bytes))
    this.wal = wal
    wal.onFull = () => this.whileFull()
    // A refused roll is a 507 only once a checkpoint freed what it could; while full, the
    // disk-full timer checkpoints instead (not every refused append).
    wal.makeRoom = () => (this.fullTimer === undefined ? this.checkpoint().catch(reportCheckpointError) : Promise.resolve())
    const onWalBatch = this.options.onWalBatch
    if (onWalBatch !== undefined) wal.onBatchWritten = (records, bytes, syncSeconds) => onWalBatch.call(this.options, records, bytes, syncSeconds)
    wal.onWriting = (buffers, startLsn, endLsn, sync) => this.onWalWriting?.(buffers, startLsn, endLsn, sync)
    wal.onWriteFailed = (error) => this.onWalWriteFailed?.(error)
    wal.prepareSpare()
    wal.onBatch = (lsn) => {
      // Before the batch's records hear back (their acknowledgement asks the gate next).
      this.gate?.written()
      if (this.checkpointing !== undefined) return
      if (lsn - this.lastCheckpointLsn >= this.budget.checkpointWalBytes || this.target!.changedCount() >= this.options.checkpointChangedStreams) {
        setImmediate(() => void this.checkpoint().catch(reportCheckpointError))
      }
    }
  }

  commit(change: Change, durability: Durability, timeMs: number, done: (error: unknown) => void): boolean {
    if (durability === 'memory') return false
    if (this.wal === undefined) throw new Error('durable storage used before recovery')
    if (!this.leading) throw new Error('a replica\'s storage takes no changes of its own')
    const gate = this.gate
    this.wal.appendThen(encodeRecord(change, timeMs), durability === 'fsync', change.kind === 'delete', (error, lsn) => {
      if (error !== undefined || gate === undefined) return done(error)
      const acknowledged = gate.acknowledged(lsn)
      if (acknowledged === undefined) return done(undefined)
      // A caller whose callback throws is a bug to report, not a rejection nobody handles.
      acknowledged.then(() => done(undefined), done).catch((thrown: unknown) => log.error({ err: thrown }, `ringstream: a commit's caller failed: ${String(thrown)}`))
    })
    return true
  }

  /** How long the WAL batch in flight has been writing (0: none is). */
  get walStalledMs(): number {
    return this.wal?.stalledMs ?? 0
  }

  /** Whole WAL batches from `fromLsn` (a replica behind the batches kept in memory). */
  readWal(fromLsn: number, bytesMax: number): Promise<WalFrames> {
    return readWalFrames(this.options.io, this.paths, fromLsn, this.walLsn, bytesMax)
  }

  /** A copy for a new replica (cluster/): the registry store as of a checkpoint, taken
   * while no other checkpoint runs, into `dir`/registry, and the names of the stream files
   * (relative to the data directory) as they are now — each holds at least what that
   * checkpoint recorded; bytes past it are written again when the replica replays the WAL
   * from the checkpoint's LSN, which is kept here (no segment from it on is retired) until
   * release(). */
  async snapshot(dir: string): Promise<{ lsn: number; files: string[]; release: () => void }> {
    const store = this.store
    if (store?.backup === undefined) throw new Error('this registry store cannot be copied for a replica')
    await this.checkpoint()
    while (this.checkpointing !== undefined) await this.checkpointing.catch(() => {})
    let lsn = 0
    const copy = (async () => {
      lsn = store.meta!.lsn
      await this.options.io.mkdirp(`${dir}/registry`)
      await store.backup!(`${dir}/registry`)
    })()
    this.checkpointing = copy.finally(() => {
      this.checkpointing = undefined
    })
    await copy
    const hold = { lsn }
    this.holds.add(hold)
    const files = (await this.options.io.list(this.paths.streamsDir)).map((name) => `streams/${name}`)
    return { lsn, files, release: () => this.holds.delete(hold) }
  }

  /** The oldest LSN the WAL still holds (older batches were retired by checkpoints). */
  async oldestWalLsn(): Promise<number> {
    return (await segmentBases(this.options.io, this.paths))[0] ?? this.walLsn
  }

  /** End of the WAL as written here. */
  get walLsn(): number {
    return this.wal?.lsn ?? 0
  }

  /** Everything up to this LSN is in committed state (what a checkpoint may record);
   * undefined while a new leader's state runs ahead of what a majority is known to have
   * (a checkpoint then could hold records its shard may still drop). */
  get stableLsn(): number | undefined {
    const wal = this.walLsn
    if (this.promoting) return undefined
    if (!this.leading) return this.applied
    if (this.gate === undefined) return wal
    const committed = Math.min(wal, this.gate.committedLsn)
    return committed < this.applied ? undefined : committed
  }

  /** A replica: writes batches its leader framed (checked here first, then again when
   * read back), resolving with the new end of the log once written (and synced). */
  async writeFrames(frames: Buffer, sync: boolean): Promise<number> {
    if (this.wal === undefined || this.leading) throw new Error('writeFrames: not a replica')
    checkFrames(frames)
    const start = this.wal.lsn
    const end = await this.wal.appendFramed(frames, sync)
    this.pending.add(start, frames)
    return end
  }

  /** A replica: applies the records of every batch up to `lsn` (a batch boundary), in order. */
  applyTo(lsn: number): Promise<void> {
    const next = this.applying.then(() => this.applyNow(Math.min(lsn, this.walLsn)))
    // One failure is reported to its caller, not to every later apply.
    this.applying = next.catch(() => {})
    return next
  }

  private async applyNow(lsn: number): Promise<void> {
    const target = this.target!
    while (this.applied < lsn) {
      let frames = this.pending.from(this.applied)
      if (frames === undefined) frames = (await readWalFrames(this.options.io, this.paths, this.applied, this.walLsn, APPLY_READ_BYTES)).bytes
      if (frames.length === 0) throw new Error(`apply to LSN ${lsn}: the WAL ends at ${this.applied}`)
      let at = 0
      while (at < frames.length && this.applied < lsn) {
        const frame = checkFrame(frames, at, frames.length)
        if (frame.kind !== 'ok') throw new WalCorruptionError(`a written batch at LSN ${this.applied} reads back as ${frame.kind}`)
        forEachRecord(frames, at, frame.bodyLength, (record) => target.apply(record))
        at += FRAME_HEADER_BYTES + frame.bodyLength
        this.applied += FRAME_HEADER_BYTES + frame.bodyLength
      }
      this.pending.applied(this.applied)
    }
  }

  /** A replica: drops the WAL after `lsn` (never applied: a tail its leader does not have). */
  async cutTo(lsn: number): Promise<void> {
    const wal = this.wal
    if (wal === undefined || this.leading) throw new Error('cutTo: not a replica')
    if (lsn < this.applied) throw new Error(`cannot cut the WAL to ${lsn}: applied up to ${this.applied}`)
    if (lsn >= wal.lsn) return
    await this.applying
    const end = wal.lsn
    await wal.close()
    this.pending.cut(lsn)
    this.openWriter(await cutWal(this.options.io, this.paths, lsn, end))
  }

  /** A replica becomes its shard's leader: everything it wrote is applied, and from now
   * on changes are its own (acknowledged under `gate`). */
  async lead(gate: AckGate | undefined): Promise<void> {
    this.promoting = true
    try {
      await this.applyTo(this.walLsn)
      this.pending.cut(this.applied)
      // Checkpoints wait until a majority has everything applied here (see stableLsn).
      this.gate = gate
      this.leading = true
    } finally {
      this.promoting = false
    }
  }

  /** Reads of written bytes served from the read cache, and from the data files. */
  get readCounts(): { readonly hits: number; readonly misses: number } {
    return this.files.readCounts
  }

  /** True from a refused WAL roll until the free space is back above segment + reserve, or
   * the retired WAL segment started over. */
  get diskFull(): boolean {
    return this.fullTimer !== undefined
  }

  private async mayTake(bytes: number): Promise<boolean> {
    const { freeBytes } = this.options
    return freeBytes === undefined || (await freeBytes.call(this.options)) >= bytes + this.budget.diskReserveBytes
  }

  /** The disk is full: checkpoints every DISK_FULL_RETRY_MS free what they can, until a new
   * WAL segment fits beside the reserve again, or the whole log is retired and the segment
   * being written starts over in place (a disk with room for one segment and its reserve
   * never has room for a second); appends resume then by themselves. */
  private whileFull(): void {
    if (this.fullTimer !== undefined) return
    log.warn({ diskFull: true }, 'ringstream: disk full: appends are refused (507) until space is freed; reads and deletes go on')
    this.fullTimer = setInterval(() => void this.retryFull(), DISK_FULL_RETRY_MS)
    this.fullTimer.unref()
  }

  private async retryFull(): Promise<void> {
    if (this.fullRetrying) return
    this.fullRetrying = true
    try {
      if (this.checkpointing === undefined && this.wal !== undefined) await this.checkpoint().catch(() => {})
      if (this.fullTimer === undefined) return
      const room = (await this.mayTake(this.budget.walSegmentBytes)) || (await this.wal?.reuseRetired().catch(reportReuseError)) === true
      if (!room || this.fullTimer === undefined) return
      clearInterval(this.fullTimer)
      this.fullTimer = undefined
      this.wal?.prepareSpare()
      log.info({ diskFull: false }, 'ringstream: disk space is back: appends resume')
    } finally {
      this.fullRetrying = false
    }
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
    const lsn = this.stableLsn
    if (lsn === undefined) return
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
    let keep = Math.min(lsn, this.gate?.neededLsn ?? lsn)
    for (const hold of this.holds) keep = Math.min(keep, hold.lsn)
    await this.retireSegments(keep, this.wal!.currentSegmentBase)
    // Stored and synced above: the log before `keep` is needed by nothing (WalWriter.startOver).
    wal.retiredLsn = Math.max(wal.retiredLsn, keep)
    for (const [id, segments] of released) {
      this.files.released.delete(id)
      await this.files.remove(id, segments)
    }
    target.evict()
  }

  private async retireSegments(lsn: number, currentBase: number): Promise<void> {
    const { io } = this.options
    const bases = await segmentBases(io, this.paths)
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

function reportReuseError(error: unknown): false {
  log.error({ err: error }, `ringstream: starting the retired WAL segment over failed (will retry): ${(error as Error).message}`)
  return false
}

function reportCheckpointError(error: unknown): void {
  log.error({ err: error }, `ringstream: checkpoint failed (will retry): ${(error as Error).message}`)
}
