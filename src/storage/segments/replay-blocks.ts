// storage/segments/replay-blocks.ts — the staging blocks replay reuses. While the WAL is replayed no
// one reads a stream, so a full-size block whose bytes reached the data file can go to the
// next append at once: replay then allocates about what it holds back (DataFiles.holdWrites),
// not every byte the WAL tail carried. Before, a 1M-record tail left ~100 MB of dead
// ArrayBuffers that an idle server never collected, and glibc kept most of what they took
// after they were (RSS ~80 MiB over an empty server's; issue 13).

/** Blocks whose views are all written, by size, and blocks still being written. */
export class ReplayBlocks {
  private readonly spare = new Map<number, Buffer[]>()
  /** Retired blocks (no more appends go into them) → the end of their used bytes. */
  private readonly retired = new WeakMap<ArrayBufferLike, number>()

  /** Bytes of the blocks made (not reused) so far. */
  allocatedBytes = 0

  /** A block of `bytes` for staging appends: a spare one of that size if there is one. */
  take(bytes: number): Buffer {
    const spare = this.spare.get(bytes)?.pop()
    if (spare !== undefined) return spare
    this.allocatedBytes += bytes
    return Buffer.allocUnsafe(bytes)
  }

  /** `block` takes no more appends; its bytes end at `used`. Only a block with an
   * ArrayBuffer of its own is reused (not one carved from Node's shared pool). */
  retire(block: Buffer, used: number): void {
    if (block.byteOffset === 0 && block.buffer.byteLength === block.length) this.retired.set(block.buffer, used)
  }

  /** `part` (a view of a block) is written and no longer needed. Views of a block are
   * written in order, so the one ending at a retired block's end is its last. */
  written(part: Uint8Array): void {
    const end = this.retired.get(part.buffer)
    if (end === undefined || part.byteOffset + part.length !== end) return
    this.retired.delete(part.buffer)
    const block = Buffer.from(part.buffer as ArrayBuffer)
    let sized = this.spare.get(block.length)
    if (sized === undefined) this.spare.set(block.length, (sized = []))
    sized.push(block)
  }
}
