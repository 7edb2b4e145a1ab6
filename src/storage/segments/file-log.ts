// storage/segments/file-log.ts — a stream's bytes on disk: data segment files (segments.ts) holding
// exactly the bytes a catch-up read sends, and the stream's boundary indexes
// (boundary-index.ts), written after the data they index. Bytes are staged in memory,
// written after their WAL record commits (no fsync: checkpoints sync the files), and read
// back with positional reads. Open files live in a bounded cache, so idle streams hold no
// descriptor.
// Writes are coarse: a log writes once it holds FLUSH_BYTES of committed bytes, and a
// sweep writes the rest every FLUSH_DELAY_MS — the WAL already holds them, and one write
// per append per turn cost more than the WAL itself.
// Written bytes stay in memory as a read cache (not during replay), within one byte budget
// shared by every stream (least recently used streams give theirs up first): catch-up readers of recent
// data get views, as in memory mode, instead of a file read into a fresh buffer each.
// Older bytes are read into pooled buffers (read-buffers.ts), lent to the reader for one
// event-loop turn.
// A small stream is kept inline: while it has never written its data file and holds at
// most DataFiles.inlineBytesMax committed bytes, its bytes stay in memory and a checkpoint
// stores them in the stream's registry entry (inlineAtMost): no data file is created, so
// a checkpoint after a burst to a thousand new small streams is one registry transaction.
// Past the limit the log writes them all, from position 0, and is a file log from then on.

import type { LogShape, StreamLog } from '../types.js'
import { type MaybePromise, andThen } from '../../util/maybe.js'
import { BoundaryIndex } from '../boundary-index.js'
import { type DataFiles, type FileKind, type FileRef, type SweptLog, reportFlushError } from './data-files.js'
import { segmentCount, segmentSpans, splitParts } from './segments.js'

/** Index entries wait in memory until this many can be written at once (one 4 KiB page), or
 * a checkpoint syncs the stream: a write per data flush doubled the writes of busy streams
 * (catch-up from disk and S = 10,000 writes measured slower with it). */
/** Appends smaller than this are copied into the stream's block: a request body (or, in
 * replay, a WAL read buffer) is not kept alive by a few bytes of it, and consecutive small
 * appends become one part of the next write. */
const COALESCE_BYTES_MAX = 4096
/** Block sizes: a block that fills is followed by one twice its size, up to the maximum;
 * each flush that empties a log halves it. Busy streams write 64 KiB parts; the many
 * quiet streams hold a few hundred bytes, carved from Node's shared buffer pool. */
const BLOCK_BYTES_MIN = 256
const BLOCK_BYTES_MAX = 64 * 1024
/** Streams of up to this many bytes keep them inline (see the header; a server's default):
 * the 4 KiB block and the inode a data file would take for them cost more than the bytes,
 * and their base64 in the registry entry still fits an lmdb page beside other entries. In
 * memory, a resident or changed inline stream holds its bytes, so this also bounds that:
 * (residentStreamsMax + checkpointChangedStreams) · 1 KiB, 30 MiB by default. */
export const INLINE_BYTES_DEFAULT = 1024
/** A log writes to its data file as soon as it holds this many committed bytes. */
const FLUSH_BYTES = 16 * 1024

export class FileLog implements StreamLog, SweptLog {
  /** Bytes written to the data file. */
  private flushed: number
  /** Bytes the WAL has made durable (flushable). */
  private committed: number
  private flushScheduled = false
  /** Staged bytes not yet in the file, oldest first (slab views and large bodies). */
  private pending: Uint8Array[] = []
  private pendingBytes = 0
  /** Written bytes kept for reads: [flushed - cachedBytes, flushed), oldest first. */
  private cached: Uint8Array[] = []
  private cachedBytes = 0
  /** Small appends are copied into `block`; [blockStart, blockUsed) is the open region,
   * logically after every part in `pending` (materialized as a view only when needed). */
  private block: Buffer | undefined
  private blockUsed = 0
  private blockStart = 0
  private blockBytes = BLOCK_BYTES_MIN
  private flushing: Promise<void> = Promise.resolve()
  /** Files written since their last datasync. */
  private unsynced: FileRef[] = []
  private released = false
  readonly appends: BoundaryIndex
  readonly messages: BoundaryIndex | undefined

  constructor(
    private readonly files: DataFiles,
    readonly streamId: number,
    shape: LogShape,
  ) {
    this.flushed = shape.length
    this.committed = shape.length
    // The registry entry's decoder checked that these are all `length` bytes.
    if (shape.inline !== undefined && shape.inline.length > 0) {
      this.flushed = 0
      this.pending = [shape.inline]
      this.pendingBytes = shape.inline.length
    }
    const appendTail = shape.appendTail ?? []
    this.appends = new BoundaryIndex(files.indexFile(streamId, 'appends'), files.indexPages, shape.appends - appendTail.length, appendTail)
    if (shape.messages !== undefined) {
      const messageTail = shape.messageTail ?? []
      this.messages = new BoundaryIndex(files.indexFile(streamId, 'messages'), files.indexPages, shape.messages - messageTail.length, messageTail)
    }
  }

  get length(): number {
    return this.flushed + this.pendingBytes
  }

  append(bytes: Uint8Array, messageEnds?: readonly number[], borrowed = false): void {
    if (bytes.length === 0) return
    const start = this.length
    if (this.messages !== undefined && messageEnds !== undefined) for (const end of messageEnds) this.messages.add(start + end)
    this.appends.add(start + bytes.length)
    this.pendingBytes += bytes.length
    // A borrowed payload is copied anyway: into the block, unless it would not fit one.
    if (bytes.length > (borrowed ? BLOCK_BYTES_MAX : COALESCE_BYTES_MAX)) {
      this.closeRegion()
      this.pending.push(borrowed ? Buffer.from(bytes) : bytes)
      return
    }
    if (this.block === undefined || this.blockUsed + bytes.length > this.block.length) {
      this.closeRegion()
      if (this.block !== undefined) {
        this.files.replayBlocks?.retire(this.block, this.blockUsed)
        this.blockBytes = Math.min(BLOCK_BYTES_MAX, this.blockBytes * 2)
      }
      const size = Math.max(this.blockBytes, bytes.length)
      this.block = this.files.replayBlocks?.take(size) ?? Buffer.allocUnsafe(size)
      this.blockUsed = 0
      this.blockStart = 0
    }
    this.block.set(bytes, this.blockUsed)
    this.blockUsed += bytes.length
  }

  /** Moves the open block region into `pending` as a view; later small appends start a new region. */
  private closeRegion(): void {
    if (this.block !== undefined && this.blockUsed > this.blockStart) {
      this.pending.push(this.block.subarray(this.blockStart, this.blockUsed))
      this.blockStart = this.blockUsed
    }
  }

  /** Records what is durable. A full FLUSH_BYTES is written on the next turn of the event
   * loop (one write however many appends filled it); less waits for the sweep; during
   * replay, writes are held (DataFiles.holdWrites). */
  commit(length: number): void {
    const added = Math.max(0, length - this.committed)
    this.committed += added
    if (this.inline || this.flushScheduled || this.files.hold(this, added)) return
    if (this.committed - this.flushed < FLUSH_BYTES) {
      this.files.deferFlush(this)
      return
    }
    this.flushScheduled = true
    setImmediate(() => {
      this.flushScheduled = false
      this.flush().catch(reportFlushError)
    })
  }

  truncate(length: number): void {
    if (length < this.committed) throw new Error(`cannot drop committed bytes (${length} < ${this.committed})`)
    this.closeRegion()
    // Never write into a block behind views that are about to be cut.
    this.block = undefined
    let keep = length - this.flushed
    const kept: Uint8Array[] = []
    for (const part of this.pending) {
      if (keep <= 0) break
      kept.push(part.length <= keep ? part : part.subarray(0, keep))
      keep -= part.length
    }
    this.pending = kept
    this.pendingBytes = length - this.flushed
    this.appends.truncate(length)
    this.messages?.truncate(length)
  }

  read(from: number, to: number, keep = false): MaybePromise<Uint8Array[]> {
    if (from >= this.flushed) return this.readMemory(from, to)
    if (from >= this.flushed - this.cachedBytes) {
      this.files.touchCache(this, 0)
      this.files.readCounts.hits++
      return this.readMemory(from, to)
    }
    this.files.readCounts.misses++
    const fileTo = Math.min(to, this.flushed)
    // Staged bytes are taken now: a flush finishing during the file read moves them.
    const rest = to <= this.flushed ? [] : this.readMemory(this.flushed, to)
    const { readBuffers } = this.files
    const target = keep ? Buffer.allocUnsafe(fileTo - from) : readBuffers.take(fileTo - from)
    return andThen(target, async (pooled) => {
      const buffer = pooled.subarray(0, fileTo - from)
      try {
        for (const span of segmentSpans(from, fileTo, this.files.segmentBytes)) {
          const into = buffer.subarray(span.offset, span.offset + span.length)
          const read = await this.files.use(this.streamId, (file) => this.files.io.read(file, into, span.position), 'data', span.segment)
          if (read !== span.length) throw new Error(`data segment ${span.segment} of stream ${this.streamId} is shorter than expected`)
        }
      } finally {
        if (!keep) readBuffers.give(pooled)
      }
      return rest.length === 0 ? [buffer] : [buffer, ...rest]
    })
  }

  /** [from, to) from the cache and the staged bytes after it; reads at the tail skip the
   * cache's parts. */
  private readMemory(from: number, to: number): Uint8Array[] {
    this.closeRegion()
    const parts: Uint8Array[] = []
    if (from < this.flushed) slice(this.cached, this.flushed - this.cachedBytes, from, to, parts)
    if (to > this.flushed) slice(this.pending, this.flushed, from, to, parts)
    return parts
  }

  get cachedLength(): number {
    return this.cachedBytes
  }

  /** Drops at least `bytes` of the oldest cached bytes (whole parts); returns how many. */
  dropCached(bytes: number): number {
    let dropped = 0
    let index = 0
    while (index < this.cached.length && dropped < bytes) dropped += this.cached[index++]!.length
    this.cached.splice(0, index)
    this.cachedBytes -= dropped
    return dropped
  }

  /** Writes committed, unwritten bytes to the data file, and the full pages of index
   * entries they complete. Flushes run one after another. */
  flush(): Promise<void> {
    // A failed flush must not poison later ones: each retries what is still unwritten.
    this.flushing = this.flushing.catch(() => {}).then(() => this.writeCommitted())
    return this.flushing
  }

  private async writeCommitted(): Promise<void> {
    await this.writeData()
    if (this.released) return
    // Index entries follow the data they index: an entry in the file never points past it.
    // Most flushes complete no page: they skip the index writes without awaiting anything.
    const messagesPage = this.messages?.pageUnwritten === true
    if (!this.appends.pageUnwritten && !messagesPage) return
    const appends = this.appends.writtenCount
    const messages = this.messages?.writtenCount
    await Promise.all([this.appends.writePages(this.flushed), messagesPage ? this.messages!.writePages(this.flushed) : undefined])
    if (this.appends.writtenCount !== appends) this.markUnsynced('appends', 0)
    if (this.messages !== undefined && this.messages.writtenCount !== messages) this.markUnsynced('messages', 0)
  }

  private async writeData(): Promise<void> {
    if (this.released || this.inline) return
    const bytes = this.committed - this.flushed
    if (bytes <= 0) return
    this.closeRegion()
    const parts: Uint8Array[] = []
    let taken = 0
    for (const part of this.pending) {
      if (taken >= bytes) break
      const slice = part.length <= bytes - taken ? part : part.subarray(0, bytes - taken)
      parts.push(slice)
      taken += slice.length
    }
    // A write crossing a segment boundary rolls into the next file (created by its first write).
    const pieces = splitParts(parts, this.flushed, this.files.segmentBytes)
    await Promise.all(pieces.map((piece) => this.files.use(this.streamId, (file) => this.files.io.writev(file, piece.parts, piece.position, false, true), 'data', piece.segment)))
    // Released while writing (the stream was deleted): its pending bytes are gone already.
    if (this.released) return
    for (const piece of pieces) this.markUnsynced('data', piece.segment)
    const { replayBlocks } = this.files
    if (this.pendingBytes === bytes && this.block !== undefined) {
      // Idle streams keep no block; one that was busy starts its next one smaller.
      replayBlocks?.retire(this.block, this.blockUsed)
      this.block = undefined
      this.blockBytes = Math.max(BLOCK_BYTES_MIN, this.blockBytes / 2)
    }
    // Drop what was written from the front (appends may have arrived meanwhile; they are
    // after it, in `pending` or in the open region, and are untouched). In replay nothing
    // reads: written bytes are not cached, and their blocks are reused (replay-blocks.ts).
    const keep = (part: Uint8Array): void => {
      if (replayBlocks === undefined) this.cached.push(part)
      else replayBlocks.written(part)
    }
    let drop = bytes
    let index = 0
    while (drop > 0) {
      const head = this.pending[index]!
      if (head.length <= drop) {
        drop -= head.length
        keep(head)
        index++
      } else {
        keep(head.subarray(0, drop))
        this.pending[index] = head.subarray(drop)
        drop = 0
      }
    }
    this.pending.splice(0, index)
    this.pendingBytes -= bytes
    this.flushed += bytes
    if (replayBlocks !== undefined) return
    this.cachedBytes += bytes
    this.files.touchCache(this, bytes)
  }

  /** Syncs the files written since the last sync, together; nothing to write or sync
   * costs no I/O (a checkpoint calls this for every stream that changed). */
  async sync(): Promise<void> {
    const written = await this.writeOut()
    if (written.length === 0) return
    const { io } = this.files
    try {
      await Promise.all(written.map(({ kind, segment }) => this.files.use(this.streamId, (file) => io.datasync(file), kind, segment)))
    } catch (error) {
      this.syncFailed(written)
      throw error
    }
  }

  /** Writes what is unwritten and hands over the files written since their last sync, for
   * a caller that makes them durable itself (one Io.syncFs for many logs); if that fails,
   * it gives them back with syncFailed. */
  async writeOut(): Promise<readonly FileRef[]> {
    if (this.unwritten) await this.flush()
    if (this.released) return []
    const written = this.unsynced
    this.unsynced = []
    return written
  }

  syncFailed(written: readonly FileRef[]): void {
    for (const { kind, segment } of written) this.markUnsynced(kind, segment)
  }

  private markUnsynced(kind: FileKind, segment: number): void {
    if (!this.unsynced.some((ref) => ref.kind === kind && ref.segment === segment)) this.unsynced.push({ kind, segment })
  }


  /** Whether the log keeps its bytes for its registry entry instead of a data file (see
   * the header): nothing written yet, few enough committed bytes, and no full index page. */
  private get inline(): boolean {
    return this.flushed === 0 && this.committed <= this.files.inlineBytesMax && !this.appends.pageUnwritten && this.messages?.pageUnwritten !== true
  }

  /** The committed bytes [0, length) when the log is inline, for the registry entry a
   * checkpoint stores (undefined: the data file holds them). Once all its bytes are taken,
   * an inline log keeps them as that one buffer and gives up its staging block. */
  inlineAtMost(length: number): Uint8Array | undefined {
    if (!this.inline || length === 0 || length > this.committed) return undefined
    const parts = this.readMemory(0, length)
    if (parts.length === 1) return parts[0]!
    const bytes = Buffer.concat(parts, length)
    if (length === this.pendingBytes) {
      this.pending = [bytes]
      this.block = undefined
      this.blockBytes = BLOCK_BYTES_MIN
    }
    return bytes
  }

  /** Committed bytes that reached the data file. */
  get flushedLength(): number {
    return this.flushed
  }

  /** Committed bytes or full index pages (staged entries included) not in the files yet;
   * the entries of a partial page are a checkpoint's to keep (BoundaryIndex.tailAtMost). */
  private get unwritten(): boolean {
    if (this.inline) return false
    return this.committed > this.flushed || this.appends.pageUnwritten || this.messages?.pageUnwritten === true
  }

  /** Nothing uncommitted is staged and nothing committed waits for a write or a sync. An
   * inline log's committed bytes wait for no write: the registry, which evicts only streams
   * whose changes a checkpoint stored, then has them. */
  get idle(): boolean {
    return this.length === this.committed && !this.unwritten && !this.flushScheduled && this.unsynced.length === 0
  }

  unload(): void {
    this.files.forgetCache(this)
  }

  release(): void {
    this.released = true
    this.pending = []
    this.pendingBytes = 0
    this.block = undefined
    this.files.forgetCache(this)
    // One more than the bytes need: a segment a crash left written past the checkpoint goes too.
    this.files.released.set(this.streamId, segmentCount(Math.max(this.flushed, this.committed), this.files.segmentBytes) + 1)
  }
}

/** Appends to `out` the views of [from, to) found in `parts`, which start at `start`. */
function slice(parts: readonly Uint8Array[], start: number, from: number, to: number, out: Uint8Array[]): void {
  let at = start
  for (const part of parts) {
    const end = at + part.length
    if (end > from && at < to) out.push(part.subarray(Math.max(0, from - at), Math.min(part.length, to - at)))
    at = end
    if (at >= to) break
  }
}
