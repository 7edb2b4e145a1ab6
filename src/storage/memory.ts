// storage/memory.ts — memory-mode storage: each stream log is a list of fixed-size chunks
// and commits are immediate. Reads are zero-copy views; bytes below a log's length are never
// rewritten in place, so views handed out stay valid. The first chunk grows by doubling (a
// short stream stays small); once a chunk is full the next one starts, so a long stream's
// bytes are never copied again (one growing buffer cost a copy of the whole stream at every
// doubling, and fresh pages for all of it).

import { BoundaryIndex } from './boundary-index.js'
import type { LogShape, Storage, StreamLog } from './types.js'

const INITIAL_CAPACITY_BYTES = 256
/** Bytes per chunk: reads of up to a chunk are one view, and a long stream wastes at most
 * one chunk's unused tail. */
const CHUNK_BYTES = 1 << 20

export class MemoryLog implements StreamLog {
  /** Chunk i holds bytes [i·CHUNK_BYTES, …); only the last may be shorter than CHUNK_BYTES. */
  private chunks: Buffer[] = []
  private used = 0
  readonly appends = new BoundaryIndex(undefined, undefined)
  readonly messages: BoundaryIndex | undefined

  constructor(json: boolean) {
    this.messages = json ? new BoundaryIndex(undefined, undefined) : undefined
  }

  get length(): number {
    return this.used
  }

  append(bytes: Uint8Array, messageEnds?: readonly number[]): void {
    if (bytes.length === 0) return
    if (this.messages !== undefined && messageEnds !== undefined) for (const end of messageEnds) this.messages.add(this.used + end)
    this.appends.add(this.used + bytes.length)
    let from = 0
    while (from < bytes.length) {
      const index = Math.floor(this.used / CHUNK_BYTES)
      const at = this.used - index * CHUNK_BYTES
      const room = CHUNK_BYTES - at
      const take = Math.min(room, bytes.length - from)
      const chunk = this.room(index, at + take)
      chunk.set(from === 0 && take === bytes.length ? bytes : bytes.subarray(from, from + take), at)
      from += take
      this.used += take
    }
  }

  commit(): void {}

  truncate(length: number): void {
    if (length > this.used) throw new Error(`truncate to ${length} beyond log of ${this.used} bytes`)
    const keep = Math.ceil(length / CHUNK_BYTES)
    this.chunks.length = keep
    // Views handed out earlier must keep their bytes: a last chunk that later appends would
    // write into again is copied, not rewritten in place (a full one is never written again).
    const last = keep - 1
    const kept = length - last * CHUNK_BYTES
    if (last >= 0 && kept < CHUNK_BYTES) this.chunks[last] = Buffer.from(this.chunks[last]!.subarray(0, kept))
    this.used = length
    this.appends.truncate(length)
    this.messages?.truncate(length)
  }

  read(from: number, to: number): Uint8Array[] {
    if (from < 0 || to > this.used || from > to) throw new Error(`read [${from}, ${to}) outside log of ${this.used} bytes`)
    if (from === to) return [EMPTY]
    const parts: Uint8Array[] = []
    for (let index = Math.floor(from / CHUNK_BYTES); index * CHUNK_BYTES < to; index++) {
      const base = index * CHUNK_BYTES
      parts.push(this.chunks[index]!.subarray(Math.max(from, base) - base, Math.min(to, base + CHUNK_BYTES) - base))
    }
    return parts
  }

  release(): void {
    this.chunks = []
    this.used = 0
  }

  /** Memory-class streams never leave memory: their bytes live nowhere else. */
  get idle(): boolean {
    return false
  }

  unload(): void {
    throw new Error('a memory log cannot be unloaded')
  }

  /** Chunk `index`, able to hold `end` bytes (a new one, or the first grown by doubling). */
  private room(index: number, end: number): Buffer {
    const chunk = this.chunks[index]
    if (chunk !== undefined && chunk.length >= end) return chunk
    // Only the first chunk starts small: a stream with a second one is long.
    let capacity = Math.max(index === 0 ? INITIAL_CAPACITY_BYTES : CHUNK_BYTES, (chunk?.length ?? 0) * 2)
    while (capacity < end) capacity *= 2
    const next = Buffer.allocUnsafe(Math.min(capacity, CHUNK_BYTES))
    if (chunk !== undefined) chunk.copy(next, 0, 0, this.used - index * CHUNK_BYTES)
    this.chunks[index] = next
    return next
  }
}

const EMPTY = Buffer.alloc(0)

export class MemoryStorage implements Storage {
  readonly kind = 'memory'

  createLog(_streamId: number, _durability: unknown, shape: LogShape): StreamLog {
    return new MemoryLog(shape.messages !== undefined)
  }

  commit(): boolean {
    return false
  }

  async close(): Promise<void> {}
}
