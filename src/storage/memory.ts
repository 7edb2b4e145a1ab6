// storage/memory.ts — memory-mode storage: each stream log is one growable buffer and
// commits are immediate. Reads are zero-copy views; growth reallocates, but earlier views
// stay valid because bytes below a log's length are never rewritten in place.

import { BoundaryIndex } from './boundary-index.js'
import type { LogShape, Storage, StreamLog } from './types.js'

const INITIAL_CAPACITY_BYTES = 256

export class MemoryLog implements StreamLog {
  private buffer: Buffer = Buffer.alloc(0)
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
    const needed = this.used + bytes.length
    if (needed > this.buffer.length) this.grow(needed)
    this.buffer.set(bytes, this.used)
    this.used = needed
  }

  commit(): void {}

  truncate(length: number): void {
    if (length > this.used) throw new Error(`truncate to ${length} beyond log of ${this.used} bytes`)
    // Views handed out earlier must keep their bytes: copy instead of rewriting in place.
    this.buffer = Buffer.from(this.buffer.subarray(0, length))
    this.used = length
    this.appends.truncate(length)
    this.messages?.truncate(length)
  }

  read(from: number, to: number): Uint8Array[] {
    if (from < 0 || to > this.used || from > to) throw new Error(`read [${from}, ${to}) outside log of ${this.used} bytes`)
    return [this.buffer.subarray(from, to)]
  }

  release(): void {
    this.buffer = Buffer.alloc(0)
    this.used = 0
  }

  /** Memory-class streams never leave memory: their bytes live nowhere else. */
  get idle(): boolean {
    return false
  }

  unload(): void {
    throw new Error('a memory log cannot be unloaded')
  }

  private grow(needed: number): void {
    let capacity = Math.max(INITIAL_CAPACITY_BYTES, this.buffer.length * 2)
    while (capacity < needed) capacity *= 2
    const next = Buffer.allocUnsafe(capacity)
    this.buffer.copy(next, 0, 0, this.used)
    this.buffer = next
  }
}

export class MemoryStorage implements Storage {
  readonly kind = 'memory'

  createLog(_streamId: number, _durability: unknown, shape: LogShape): StreamLog {
    return new MemoryLog(shape.messages !== undefined)
  }

  commit(): undefined {
    return undefined
  }

  async close(): Promise<void> {}
}
