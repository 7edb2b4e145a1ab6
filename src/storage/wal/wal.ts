// storage/wal/wal.ts — the write-ahead log writer with group commit. While one batch's write
// (+ datasync when any record in it needs fsync) is in flight, the next batch collects;
// each batch is one vectored write. Segments are preallocated and zero-filled (datasync
// on a preallocated file is much cheaper than on a growing one); a spare is prepared in
// the background so rolling over rarely waits. LSN = byte position in the whole log.
// A full disk: a segment is only preallocated when the file system keeps a reserve free
// beside it (room for the data files and registry a checkpoint writes, which then frees WAL
// segments), and the last CONTROL_RESERVE_BYTES of each segment take only deletes, so a
// stream can still be deleted to free space when nothing else can be written. Once a
// checkpoint has retired the whole log, the segment being written may start over in place
// (zeroed and renamed to the log's end) when no new one fits: a disk that held only one
// segment beside its reserve would otherwise stay full after every stream was deleted.

import type { Io, IoFile } from '../../io/types.js'
import { type DataPaths, segmentBase } from '../paths.js'
import { FRAME_HEADER_BYTES, batchHeader } from './wal-record.js'
import { log } from '../../util/log.js'

const ZERO_CHUNK = new Uint8Array(1 << 20)
/** The end of each segment kept for deletes (a delete record is under 100 bytes + the path):
 * 64 KiB, or a sixteenth of a small segment. */
export const CONTROL_RESERVE_BYTES = 64 * 1024

/** Refuses to take more disk space (the reserve would go); carries ENOSPC like the kernel's. */
export class DiskFullError extends Error {
  readonly code = 'ENOSPC'
}

export type WalSettle = (error: unknown, endLsn: number) => void

interface Pending {
  /** Encoded records; or, for a replica, whole batches as the leader framed them. */
  readonly buffers: Uint8Array[]
  /** The buffers are whole batches already (a follower writes its leader's bytes). */
  readonly framed: boolean
  readonly bytes: number
  readonly sync: boolean
  /** A delete: may use the segment's control reserve. */
  readonly control: boolean
  /** Told the log's end LSN once the batch is written (and synced), or the error. */
  readonly settle: WalSettle
}

export interface OpenSegment {
  readonly file: IoFile
  readonly baseLsn: number
  /** Bytes the segment can hold (its preallocated size). */
  readonly capacity: number
  /** Where the next record goes, relative to the segment. */
  position: number
}

/** The base LSNs of the WAL's segments, oldest first. */
export async function segmentBases(io: Io, paths: DataPaths): Promise<number[]> {
  return (await io.list(paths.walDir))
    .map(segmentBase)
    .filter((base): base is number => base !== undefined)
    .sort((a, b) => a - b)
}

export async function preallocate(io: Io, path: string, bytes: number): Promise<IoFile> {
  const file = await io.open(path, true)
  await zeroFill(io, file, 0, bytes)
  return file
}

/** Writes zeros over [from, to) of `file` and datasyncs it. */
async function zeroFill(io: Io, file: IoFile, from: number, to: number): Promise<void> {
  // In the background (io-wq under uring): zeroing 64 MiB inside io_uring_enter cost the
  // event loop ~1 ms per chunk, at every WAL roll.
  for (let at = from; at < to; at += ZERO_CHUNK.length) {
    await io.writev(file, [ZERO_CHUNK.subarray(0, Math.min(ZERO_CHUNK.length, to - at))], at, false, true)
  }
  await io.datasync(file)
}

/** Tells each record's writer; one that throws is a bug reported here, not a failed write
 * (the batch is on disk, and the others must still hear). */
function settleAll(batch: readonly Pending[], error: unknown, endLsn: number): void {
  for (const pending of batch) {
    try {
      pending.settle(error, endLsn)
    } catch (thrown) {
      log.error({ err: thrown }, `ringstream: a WAL record's writer failed: ${String(thrown)}`)
    }
  }
}

export class WalWriter {
  private queue: Pending[] = []
  private writing = false
  private scheduled = false
  private spare: Promise<{ file: IoFile; capacity: number }> | undefined
  /** A roll is in progress: it may be preallocating the spare's path itself, so no
   * background spare may start meanwhile (two writers of one path; found on a full disk). */
  private rolling = false
  /** When the batch being written started (monotonic ms); undefined: none in flight. */
  private writingSince: number | undefined
  /** End of the last successfully written batch. */
  lsn: number
  /** Everything before this LSN is in a stored checkpoint and needed by no replica (the
   * owner sets it after each checkpoint): once it reaches `lsn`, no byte of the log is
   * needed and the segment being written may start over (startOver). */
  retiredLsn = 0
  /** A segment started over was renamed but the rename may not be durable yet: the
   * directory is synced before anything is written at its new LSN. */
  private renameUnsynced = false
  /** Called after each successful batch with the new end LSN. */
  onBatch: (endLsn: number) => void = () => {}
  /** Asked to free what it can when no new segment fits, before the roll is refused (the
   * owner checkpoints: older segments retire, deleted streams' files go, retiredLsn moves). */
  makeRoom: () => Promise<void> = async () => {}
  /** Called when a roll was refused for want of space. */
  onFull: () => void = () => {}
  /** Told each written batch: records, bytes, and the write's seconds when it was synced. */
  onBatchWritten: ((records: number, bytes: number, syncSeconds: number | undefined) => void) | undefined
  /** Told each batch's bytes, [startLsn, endLsn), as its write starts (a replicated leader
   * sends them to its followers while its own disk writes them; cluster/). The buffers must
   * not be changed. */
  onWriting: ((buffers: readonly Uint8Array[], startLsn: number, endLsn: number, sync: boolean) => void) | undefined
  /** Told when a batch handed to onWriting then failed to be written here. */
  onWriteFailed: ((error: unknown) => void) | undefined
  private readonly controlReserve: number

  constructor(
    private readonly io: Io,
    private readonly paths: DataPaths,
    private readonly segmentBytes: number,
    private segment: OpenSegment,
    /** Whether `bytes` more may be taken on the WAL's file system (its reserve left free). */
    private readonly mayTake: (bytes: number) => Promise<boolean> = async () => true,
  ) {
    this.lsn = segment.baseLsn + segment.position
    this.controlReserve = Math.min(CONTROL_RESERVE_BYTES, Math.floor(segmentBytes / 16))
  }

  /** How long the batch in flight has been writing (0: none is): a disk that stalls. */
  get stalledMs(): number {
    return this.writingSince === undefined ? 0 : performance.now() - this.writingSince
  }

  /** Base LSN of the segment being written (older segments may be retired). */
  get currentSegmentBase(): number {
    return this.segment.baseLsn
  }

  /** Queues a record; resolves with the log's end LSN once its batch is written (and synced). */
  append(buffers: Uint8Array[], sync: boolean, control = false): Promise<number> {
    return new Promise((resolve, reject) => this.appendThen(buffers, sync, control, (error, endLsn) => (error === undefined ? resolve(endLsn) : reject(error))))
  }

  /** append() with a callback: the append path makes no promise per record. */
  appendThen(buffers: Uint8Array[], sync: boolean, control: boolean, settle: WalSettle): void {
    let bytes = 0
    for (const buffer of buffers) bytes += buffer.length
    this.queue.push({ buffers, framed: false, bytes, sync, control, settle })
    this.schedule()
  }

  /** Queues whole batches framed by a leader (checked by the caller), written byte for
   * byte so the LSNs match the leader's; resolves with the end LSN once written (and
   * synced). A replica's log takes no records of its own meanwhile. */
  appendFramed(frames: Uint8Array, sync: boolean): Promise<number> {
    return new Promise((resolve, reject) => {
      const settle: WalSettle = (error, endLsn) => (error === undefined ? resolve(endLsn) : reject(error))
      this.queue.push({ buffers: [frames], framed: true, bytes: frames.length, sync, control: true, settle })
      this.schedule()
    })
  }

  private schedule(): void {
    if (this.scheduled || this.writing) return
    this.scheduled = true
    // setImmediate lets every request that arrived in this event-loop turn join the batch.
    setImmediate(() => {
      this.scheduled = false
      void this.writeBatch()
    })
  }

  private async writeBatch(): Promise<void> {
    if (this.writing || this.queue.length === 0) return
    this.writing = true
    this.writingSince = performance.now()
    const batch = this.queue
    this.queue = []
    let recordsLength = 0
    let sync = false
    let control = true
    const framed = batch[0]!.framed
    const buffers: Uint8Array[] = framed ? [] : [new Uint8Array(0)]
    for (const pending of batch) {
      if (pending.framed !== framed) throw new Error('WAL: a replica\'s framed batches mixed with records of its own')
      recordsLength += pending.bytes
      sync ||= pending.sync
      control &&= pending.control
      for (const buffer of pending.buffers) buffers.push(buffer)
    }
    const bytes = framed ? recordsLength : FRAME_HEADER_BYTES + recordsLength
    let handed = false
    let endLsn: number | undefined
    try {
      if (!framed) buffers[0] = batchHeader(buffers, recordsLength)
      const room = this.segment.capacity - (control ? 0 : this.controlReserve)
      if (this.segment.position + bytes > room) {
        try {
          await this.roll(bytes)
        } catch (error) {
          if (error instanceof DiskFullError) this.onFull()
          // Deletes queued with refused appends go again on their own, into the reserve.
          if (error instanceof DiskFullError && !control && batch.some((pending) => pending.control)) {
            // Appends queued meanwhile were staged on top of the refused ones: they fail too.
            const waiting = batch.concat(this.queue)
            this.queue = waiting.filter((pending) => pending.control)
            settleAll(waiting.filter((pending) => !pending.control), error, 0)
            return
          }
          throw error
        }
      }
      if (this.renameUnsynced) await this.syncRename()
      const started = this.onBatchWritten === undefined ? 0 : performance.now()
      if (this.onWriting !== undefined) {
        handed = true
        try {
          this.onWriting(buffers, this.lsn, this.lsn + bytes, sync)
        } catch (error) {
          log.error({ err: error }, `ringstream: a WAL batch listener failed: ${(error as Error).message}`)
        }
      }
      await this.io.writev(this.segment.file, buffers, this.segment.position, sync)
      this.onBatchWritten?.(batch.length, bytes, sync ? (performance.now() - started) / 1000 : undefined)
      this.segment.position += bytes
      this.lsn += bytes
      endLsn = this.lsn
      // The batch is on disk whatever a listener does: its records must hear so.
      try {
        this.onBatch(this.lsn)
      } catch (error) {
        log.error({ err: error }, `ringstream: a WAL batch listener failed: ${String(error)}`)
      }
    } catch (error) {
      // Others may hold what this disk refused: the owner must not go on as if it never was.
      if (handed) this.onWriteFailed?.(error)
      // Everything queued meanwhile was validated on top of this batch: it fails too.
      const failed = batch.concat(this.queue)
      this.queue = []
      settleAll(failed, error, 0)
    } finally {
      this.writing = false
      this.writingSince = undefined
      if (this.queue.length > 0) this.schedule()
    }
    // After onBatch (the replication gate hears of the batch before its records ask it), and
    // outside the try: a record's writer runs no code that could fail the batch.
    if (endLsn !== undefined) settleAll(batch, undefined, endLsn)
  }

  private async roll(bytesNeeded: number): Promise<void> {
    this.rolling = true
    try {
      await this.rollOver(bytesNeeded)
    } finally {
      this.rolling = false
    }
    this.prepareSpare()
  }

  private async rollOver(bytesNeeded: number): Promise<void> {
    const capacity = Math.max(this.segmentBytes, bytesNeeded)
    let next = this.spare === undefined ? undefined : await this.spare.catch(() => undefined)
    this.spare = undefined
    if (next === undefined || next.capacity < capacity) {
      if (next !== undefined) await this.io.close(next.file)
      if (!(await this.mayTake(capacity))) {
        await this.makeRoom()
        if (!(await this.mayTake(capacity))) {
          if (this.segment.capacity >= bytesNeeded && (await this.mayStartOver())) return this.startOver()
          throw new DiskFullError('no space left for a new WAL segment beside the disk reserve')
        }
      }
      next = { file: await preallocate(this.io, this.paths.walSpare, capacity), capacity }
    }
    const baseLsn = this.lsn
    await this.io.rename(this.paths.walSpare, this.paths.walSegment(baseLsn))
    await this.io.syncDir(this.paths.walDir)
    await this.io.close(this.segment.file)
    this.segment = { file: next.file, baseLsn, capacity: next.capacity, position: 0 }
  }

  /** Starts the segment being written over in place when the whole log is retired and
   * the reserve is free beside it (no new segment fits, or the disk-full timer asks):
   * waits for no batch, and takes none while it zeroes; false when it did not. */
  async reuseRetired(): Promise<boolean> {
    if (this.writing || this.rolling) return false
    this.writing = true
    this.writingSince = performance.now()
    try {
      if (!(await this.mayStartOver())) return false
      await this.startOver()
      return true
    } finally {
      this.writing = false
      this.writingSince = undefined
      if (this.queue.length > 0) this.schedule()
    }
  }

  /** Whether the segment being written may start over: nothing in the log is needed any
   * more, there is something to reclaim, and the reserve is free (the records it will hold
   * are copied into the data files out of the reserve, as beside a new segment). */
  private async mayStartOver(): Promise<boolean> {
    return this.retiredLsn >= this.lsn && this.segment.position > 0 && (await this.mayTake(0))
  }

  /**
   * The segment being written becomes the (empty) segment at `lsn`: zeroed whole (its blocks
   * are allocated already: no new space), then renamed from its base LSN to `lsn`. Frames
   * carry no LSN, so the zeros are what keep old frames from being read at new LSNs. A crash
   * at any point recovers: recovery starts at the checkpoint's LSN, which is `lsn` (the whole
   * log is retired), in the last segment starting at or before it (wal-reader.ts). Before the
   * rename is durable that is the old name, read from `lsn - base`: the end of the log as it
   * was, where the zeroing, torn or whole, only ever puts zeros, so the log ends there as it
   * did and is written on from there. After it, the segment at `lsn`, all zeros: an empty
   * log. Nothing is written at the new LSNs before the rename is durable.
   */
  private async startOver(): Promise<void> {
    const { file, baseLsn, capacity } = this.segment
    await zeroFill(this.io, file, 0, capacity)
    await this.io.rename(this.paths.walSegment(baseLsn), this.paths.walSegment(this.lsn))
    // Renamed: whatever the directory sync says, the next write goes to the new LSNs' place.
    this.segment = { file, baseLsn: this.lsn, capacity, position: 0 }
    this.renameUnsynced = true
    await this.syncRename()
    log.info({ lsn: this.lsn, bytes: capacity }, `ringstream: the WAL segment was retired whole and starts over at LSN ${this.lsn} (no room for a new one)`)
  }

  private async syncRename(): Promise<void> {
    await this.io.syncDir(this.paths.walDir)
    this.renameUnsynced = false
  }

  /** Starts preallocating the next segment in the background, if the reserve allows. */
  prepareSpare(): void {
    if (this.spare !== undefined || this.rolling) return
    const capacity = this.segmentBytes
    // A spare becomes the segment written with no second look at the free space: it takes
    // its own size now, and the records of the segment being written, still to be copied
    // into the data files, may take as much before then; the reserve is left beside both.
    // (Asking for its size alone let those copies eat the reserve: on a 64 MiB disk they
    // failed with ENOSPC, and so did every checkpoint.)
    const spare = this.mayTake(2 * capacity).then(async (allowed) => {
      if (!allowed) throw new DiskFullError('no space for a spare WAL segment beside the disk reserve')
      return { file: await preallocate(this.io, this.paths.walSpare, capacity), capacity }
    })
    this.spare = spare
    spare.catch(() => {
      if (this.spare === spare) this.spare = undefined
    })
  }

  async close(): Promise<void> {
    while (this.writing || this.queue.length > 0 || this.scheduled) await new Promise((resolve) => setImmediate(resolve))
    const spare = this.spare === undefined ? undefined : await this.spare.catch(() => undefined)
    if (spare !== undefined) await this.io.close(spare.file)
    await this.io.close(this.segment.file)
  }
}

/**
 * Cuts the log back to `lsn` (a replica dropping a tail its new leader never had; see
 * cluster/): later segments are removed and the cut segment is zeroed from `lsn` to
 * `endLsn` (the old end), so no stale frame can ever be read after it; all synced before
 * the segment to continue writing is returned.
 */
export async function cutWal(io: Io, paths: DataPaths, lsn: number, endLsn: number): Promise<OpenSegment> {
  const bases = await segmentBases(io, paths)
  const keep = bases.filter((base) => base <= lsn).pop()
  if (keep === undefined) throw new Error(`WAL cut to LSN ${lsn}: no segment holds it`)
  for (const base of bases) if (base > keep) await io.unlink(paths.walSegment(base))
  // The removals are durable before the kept segment changes: a crash in between must not
  // leave a later segment that no longer follows it.
  await io.syncDir(paths.walDir)
  const file = await io.open(paths.walSegment(keep), false)
  const capacity = await io.size(file)
  await zeroFill(io, file, lsn - keep, Math.min(capacity, endLsn - keep))
  await io.syncDir(paths.walDir)
  return { file, baseLsn: keep, capacity, position: lsn - keep }
}
