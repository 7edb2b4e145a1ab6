// storage/segments/read-buffers.ts — the buffers data-file reads land in: a fixed set, created on
// first use and then reused, lent to a reader for one event-loop turn. When every buffer is
// lent, the next read waits for one. Measured on catch-up from disk (200 readers of 2 MiB
// streams at once): with a fresh 1 MiB buffer per read, a third of the server's core went
// to the kernel zeroing new pages and more to the garbage collector sweeping the buffers.

import type { MaybePromise } from '../../util/maybe.js'

/** Reads are at most readChunkBytes (1 MiB by default) at a time: a larger response goes
 * out in pieces (http/catch-up.ts). A larger read gets a buffer of its own, outside the pool. */
export const READ_BUFFER_BYTES = 1024 * 1024
/** Reads in flight at once, and the memory the pool can hold (× READ_BUFFER_BYTES). A read
 * from the page cache takes ~0.1–0.3 ms; 16 keep the core busy without 200 readers holding
 * 200 MiB. */
export const READ_BUFFERS_MAX = 16

export class ReadBuffers {
  private readonly spare: Buffer[] = []
  private lent: Buffer[] = []
  private created = 0
  private readonly waiting: Array<(buffer: Buffer) => void> = []

  constructor(
    private readonly bufferBytes = READ_BUFFER_BYTES,
    private readonly buffersMax = READ_BUFFERS_MAX,
  ) {}

  /** A buffer of at least `bytes`, now or once a lent one comes back. */
  take(bytes: number): MaybePromise<Buffer> {
    if (bytes > this.bufferBytes) return Buffer.allocUnsafeSlow(bytes)
    const spare = this.spare.pop()
    if (spare !== undefined) return spare
    if (this.created < this.buffersMax) {
      this.created++
      return Buffer.allocUnsafeSlow(this.bufferBytes)
    }
    return new Promise((resolve) => this.waiting.push(resolve))
  }

  /** `buffer` is free again once this turn's microtasks (the reader's) have run. */
  give(buffer: Buffer): void {
    if (buffer.length !== this.bufferBytes) return
    if (this.lent.length === 0) setImmediate(() => this.reclaim())
    this.lent.push(buffer)
  }

  /** Buffers created so far (at most READ_BUFFERS_MAX). */
  get size(): number {
    return this.created
  }

  private reclaim(): void {
    const lent = this.lent
    this.lent = []
    for (const buffer of lent) {
      const waiter = this.waiting.shift()
      if (waiter === undefined) this.spare.push(buffer)
      else waiter(buffer)
    }
  }
}
