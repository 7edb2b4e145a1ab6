// storage/boundary-index.ts — a sorted list of byte positions in one stream log (where
// appends end; for JSON streams also where messages end), kept on disk, not in memory.
// Entries are f64 little-endian, 8 bytes each, in a file beside the stream's data file;
// entry i is at file position 8·i. The file holds the committed entries up to `written`,
// whole pages only; entries after it (committed or only staged) wait in memory. A page is
// written once it is full (storage/segments/file-log.ts, after the data it indexes); the entries of
// the last, partial page go into the stream's registry entry at each checkpoint (`tail`),
// so a stream of a few appends never needs an index file, and a checkpoint of a changed
// stream syncs its data file alone unless a page filled.
// Lookups are rank (how many entries ≤ v) and at (entry i): pending entries answer
// synchronously; older ones need one page (PAGE_ENTRIES entries, 4 KiB) found through a
// sparse summary — the first entry of every page, 1/512 of the index — loaded from the file
// on the first lookup that needs it. Pages read are kept in one cache shared by all streams.
// Memory mode keeps every entry pending (its bytes are in memory too); no file at all.

import { endianness } from 'node:os'
import { type MaybePromise, andThen } from '../util/maybe.js'

export const ENTRY_BYTES = 8
/** Entries per page: one 4 KiB read finds any entry once the summary is loaded. */
export const PAGE_ENTRIES = 512
/** Entries read at a time while loading a summary (1 MiB reads). */
const SUMMARY_READ_ENTRIES = 128 * 1024
const PENDING_INITIAL = 16

if (endianness() !== 'LE') throw new Error('ringstream stores index entries little-endian and runs on little-endian machines only')

/** Where an index's entries live on disk (provided by storage/segments/file-log.ts). */
export interface IndexFile {
  /** Reads into `buffer` from byte `position`; returns bytes read. */
  read(buffer: Uint8Array, position: number): Promise<number>
  write(buffer: Uint8Array, position: number): Promise<void>
  /** A key unique among all index files, for the shared page cache. */
  readonly cacheKey: string
}

/** Pages of index files read recently, least recently used first, across all streams. */
export class IndexPages {
  private readonly pages = new Map<string, Float64Array>()

  constructor(private readonly pagesMax: number) {}

  /** A cached page holding at least `entries` entries, or undefined. */
  get(key: string, entries: number): Float64Array | undefined {
    const page = this.pages.get(key)
    if (page === undefined || page.length < entries) return undefined
    this.pages.delete(key)
    this.pages.set(key, page)
    return page
  }

  set(key: string, page: Float64Array): void {
    this.pages.delete(key)
    this.pages.set(key, page)
    for (const oldest of this.pages.keys()) {
      if (this.pages.size <= this.pagesMax) return
      this.pages.delete(oldest)
    }
  }
}

/** Index of the first element > value among sorted[0, count). */
export function upperBound(sorted: Float64Array, count: number, value: number): number {
  let lo = 0
  let hi = count
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (sorted[mid]! <= value) lo = mid + 1
    else hi = mid
  }
  return lo
}

export class BoundaryIndex {
  /** Entries [written, written + pendingCount): not yet in the file. */
  private pending: Float64Array = EMPTY
  private pendingCount = 0
  /** First entry of each page of [0, written), once loaded; undefined until needed. */
  private summary: Float64Array | undefined
  private summaryCount = 0
  private loadingSummary: Promise<void> | undefined
  private writing = false

  /** `written`: entries the file already holds; `tail`: the entries after them, as a
   * checkpoint stored them (recovery). */
  constructor(
    private readonly file: IndexFile | undefined,
    private readonly pages: IndexPages | undefined,
    private written = 0,
    tail: readonly number[] = [],
  ) {
    if (written === 0) this.summary = EMPTY
    for (const position of tail) this.add(position)
  }

  /** Every entry, staged ones included. */
  get count(): number {
    return this.written + this.pendingCount
  }

  /** Entries the file holds. */
  get writtenCount(): number {
    return this.written
  }

  /** Entries ≤ `position`, counting only what is pending (all entries past the file are). */
  countAtMost(position: number): number {
    return this.written + upperBound(this.pending, this.pendingCount, position)
  }

  /** The entries ≤ `position` that the file will not hold once its whole pages are written:
   * what a checkpoint stores beside the file (fewer than PAGE_ENTRIES). */
  tailAtMost(position: number): number[] {
    const count = this.countAtMost(position)
    const first = Math.max(this.written, count - (count % PAGE_ENTRIES))
    return Array.from(this.pending.subarray(first - this.written, count - this.written))
  }

  /** Whether a full page of entries waits to be written. */
  get pageUnwritten(): boolean {
    const count = this.count
    return count - (count % PAGE_ENTRIES) > this.written
  }

  /** Stages an entry; it must be greater than every entry before it. */
  add(position: number): void {
    if (this.pendingCount > 0 && position <= this.pending[this.pendingCount - 1]!) {
      throw new Error(`index entry ${position} not after ${this.pending[this.pendingCount - 1]}`)
    }
    if (this.pendingCount === this.pending.length) {
      const grown = new Float64Array(Math.max(PENDING_INITIAL, this.pending.length * 2))
      grown.set(this.pending.subarray(0, this.pendingCount))
      this.pending = grown
    }
    this.pending[this.pendingCount++] = position
  }

  /** Drops staged entries beyond `position` (they are never written yet). */
  truncate(position: number): void {
    this.pendingCount = upperBound(this.pending, this.pendingCount, position)
  }

  /** How many entries are ≤ value. */
  rank(value: number): MaybePromise<number> {
    if (this.pendingCount > 0 && value >= this.pending[0]!) return this.written + upperBound(this.pending, this.pendingCount, value)
    if (this.written === 0) return 0
    return andThen(this.loadSummary(), (summary) => {
      const page = upperBound(summary, this.summaryCount, value) - 1
      if (page < 0) return 0
      return andThen(this.page(page), (entries) => page * PAGE_ENTRIES + upperBound(entries, entries.length, value))
    })
  }

  /** Entry `i` (0 ≤ i < count). */
  at(i: number): MaybePromise<number> {
    if (i < 0 || i >= this.count) throw new RangeError(`index entry ${i} of ${this.count}`)
    if (i >= this.written) return this.pending[i - this.written]!
    const page = Math.floor(i / PAGE_ENTRIES)
    return andThen(this.page(page), (entries) => entries[i - page * PAGE_ENTRIES]!)
  }

  /** Largest entry ≤ value, or undefined. */
  floor(value: number): MaybePromise<number | undefined> {
    return andThen(this.rank(value), (rank) => (rank === 0 ? undefined : this.at(rank - 1)))
  }

  /** Smallest entry > value, or undefined. */
  ceil(value: number): MaybePromise<number | undefined> {
    return andThen(this.rank(value), (rank) => (rank >= this.count ? undefined : this.at(rank)))
  }

  /** Whether `value` is an entry. */
  has(value: number): MaybePromise<boolean> {
    return andThen(this.floor(value), (floor) => floor === value)
  }

  /** Entries [from, from + n) in order (n bounded by the caller). */
  range(from: number, n: number): MaybePromise<number[]> {
    const out: number[] = []
    const next = (i: number): MaybePromise<number[]> => {
      for (; i < from + n; i++) {
        const value = this.at(i)
        if (value instanceof Promise) return value.then((ready) => (out.push(ready), next(i + 1)))
        out.push(value)
      }
      return out
    }
    return next(from)
  }

  /** Writes the whole pages of pending entries ≤ `position` (all committed) to the file.
   * One write at a time. */
  async writePages(position: number): Promise<void> {
    const file = this.file
    if (file === undefined || this.writing) return
    const end = this.written + upperBound(this.pending, this.pendingCount, position)
    // A file a checkpoint of an earlier version left mid-page first catches up to a page end.
    const n = end - (end % PAGE_ENTRIES) - this.written
    if (n <= 0) return
    this.writing = true
    const entries = this.pending
    try {
      await file.write(new Uint8Array(entries.buffer, 0, n * ENTRY_BYTES), this.written * ENTRY_BYTES)
    } finally {
      this.writing = false
    }
    // add() may have grown `pending` meanwhile (a copy); entries [0, n) are the same in both.
    const first = this.written
    if (this.summary !== undefined) {
      for (let i = first; i < first + n; i++) if (i % PAGE_ENTRIES === 0) this.pushSummary(entries[i - first]!)
    }
    this.pendingCount -= n
    this.written += n
    // A burst (a replay, a fast producer) grew `pending`; once written, it shrinks again.
    if (this.pending.length > PENDING_INITIAL && this.pendingCount * 4 < this.pending.length) {
      this.pending = this.pending.slice(n, n + Math.max(PENDING_INITIAL, this.pendingCount * 2))
    } else {
      this.pending.copyWithin(0, n, n + this.pendingCount)
    }
  }

  private pushSummary(value: number): void {
    if (this.summaryCount === this.summary!.length) {
      const grown = new Float64Array(Math.max(PENDING_INITIAL, this.summaryCount * 2))
      grown.set(this.summary!)
      this.summary = grown
    }
    this.summary![this.summaryCount++] = value
  }

  private loadSummary(): MaybePromise<Float64Array> {
    if (this.summary !== undefined) return this.summary
    this.loadingSummary ??= this.readSummary().finally(() => {
      this.loadingSummary = undefined
    })
    return this.loadingSummary.then(() => this.summary!)
  }

  /** Reads the file's entries [0, written) and keeps every page's first one. Writes that
   * finish meanwhile raise `written`: the loop reads until it has caught up. */
  private async readSummary(): Promise<void> {
    const chunk = new Float64Array(SUMMARY_READ_ENTRIES)
    const firsts = new Float64Array(Math.ceil(this.written / PAGE_ENTRIES) + 1)
    let collected = 0
    let firstsUsed = 0
    let buffer = firsts
    while (collected < this.written) {
      const n = Math.min(SUMMARY_READ_ENTRIES, this.written - collected)
      await this.readEntries(chunk, collected, n)
      for (let i = collected % PAGE_ENTRIES === 0 ? 0 : PAGE_ENTRIES - (collected % PAGE_ENTRIES); i < n; i += PAGE_ENTRIES) {
        if (firstsUsed === buffer.length) {
          const grown = new Float64Array(buffer.length * 2)
          grown.set(buffer)
          buffer = grown
        }
        buffer[firstsUsed++] = chunk[i]!
      }
      collected += n
    }
    this.summary = buffer
    this.summaryCount = firstsUsed
  }

  /** Page `page` of the file (PAGE_ENTRIES entries, fewer for the last), through the cache. */
  private page(page: number): MaybePromise<Float64Array> {
    const entries = Math.min(PAGE_ENTRIES, this.written - page * PAGE_ENTRIES)
    const key = `${this.file!.cacheKey}:${page}`
    const cached = this.pages?.get(key, entries)
    if (cached !== undefined) return cached.length === entries ? cached : cached.subarray(0, entries)
    const read = new Float64Array(entries)
    return this.readEntries(read, page * PAGE_ENTRIES, entries).then(() => {
      this.pages?.set(key, read)
      return read
    })
  }

  private async readEntries(into: Float64Array, first: number, n: number): Promise<void> {
    const bytes = new Uint8Array(into.buffer, into.byteOffset, n * ENTRY_BYTES)
    const read = await this.file!.read(bytes, first * ENTRY_BYTES)
    if (read !== bytes.length) throw new IndexFileError(`index file ${this.file!.cacheKey} holds fewer than ${first + n} entries`)
  }
}

/** An index file shorter than its checkpoint says: the data directory is damaged. */
export class IndexFileError extends Error {}

const EMPTY = new Float64Array(0)
