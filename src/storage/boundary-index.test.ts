// storage/boundary-index.ts against a plain sorted array, on the simulated disk: lookups in
// the pending part, in the file (summary loaded lazily, pages cached), across page
// boundaries, after a reopen from a count alone, and with writes finishing mid-load.

import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import { SimIo } from '../io/sim.js'
import { BoundaryIndex, type IndexFile, IndexPages, PAGE_ENTRIES } from './boundary-index.js'

class CountingFile implements IndexFile {
  reads = 0
  readonly cacheKey = 'test'
  private file: Promise<import('../io/types.js').IoFile>

  constructor(private readonly io: SimIo) {
    this.file = io.open('/index', true)
  }

  async read(buffer: Uint8Array, position: number): Promise<number> {
    this.reads++
    return this.io.read(await this.file, buffer, position)
  }

  async write(buffer: Uint8Array, position: number): Promise<void> {
    await this.io.writev(await this.file, [buffer], position, false)
  }
}

const value = async <T>(x: T | Promise<T>): Promise<T> => await x

/** What each lookup must answer, from a plain array. */
function expected(sorted: number[], probe: number) {
  const rank = sorted.filter((entry) => entry <= probe).length
  return { rank, floor: rank === 0 ? undefined : sorted[rank - 1], ceil: sorted[rank], has: sorted.includes(probe) }
}

async function checkAll(index: BoundaryIndex, sorted: number[], probes: number[]): Promise<void> {
  for (const probe of probes) {
    const want = expected(sorted, probe)
    expect(await value(index.rank(probe))).toBe(want.rank)
    expect(await value(index.floor(probe))).toBe(want.floor)
    expect(await value(index.ceil(probe))).toBe(want.ceil)
    expect(await value(index.has(probe))).toBe(want.has)
  }
}

describe('BoundaryIndex', () => {
  test('answers from pending entries synchronously, from the file after page writes', async () => {
    const io = new SimIo()
    const file = new CountingFile(io)
    const index = new BoundaryIndex(file, new IndexPages(4))
    const entries = Array.from({ length: 3 * PAGE_ENTRIES + 7 }, (_, i) => (i + 1) * 3)
    for (const entry of entries) index.add(entry)
    expect(index.rank(30)).toBe(10)
    expect(index.floor(31)).toBe(30)
    expect(file.reads).toBe(0)
    // Only whole pages are written: entry 2·PAGE_ENTRIES starts a third page, which waits.
    expect(index.pageUnwritten).toBe(true)
    await index.writePages(entries[2 * PAGE_ENTRIES]!)
    expect(index.writtenCount).toBe(2 * PAGE_ENTRIES)
    expect(index.tailAtMost(entries[2 * PAGE_ENTRIES + 3]!)).toEqual(entries.slice(2 * PAGE_ENTRIES, 2 * PAGE_ENTRIES + 4))
    const probes = [0, 1, 3, 4, entries[PAGE_ENTRIES - 1]!, entries[PAGE_ENTRIES]!, entries[2 * PAGE_ENTRIES]! + 1, entries.at(-1)!, entries.at(-1)! + 5]
    await checkAll(index, entries, probes)
    // Written while nobody looked: the summary grew with the writes, so a lookup reads one page.
    await index.writePages(Infinity)
    expect(index.writtenCount).toBe(3 * PAGE_ENTRIES)
    expect(index.pageUnwritten).toBe(false)
    expect(index.tailAtMost(Infinity)).toEqual(entries.slice(3 * PAGE_ENTRIES))
    const before = file.reads
    expect(await value(index.at(3 * PAGE_ENTRIES + 2))).toBe(entries[3 * PAGE_ENTRIES + 2])
    expect(file.reads - before).toBeLessThanOrEqual(1)
    expect(await value(index.range(PAGE_ENTRIES - 2, 4))).toEqual(entries.slice(PAGE_ENTRIES - 2, PAGE_ENTRIES + 2))
  })

  test('reopened from its count: loads the summary once, then one page read per lookup at most', async () => {
    const io = new SimIo()
    const first = new BoundaryIndex(new CountingFile(io), undefined)
    const entries = Array.from({ length: 10 * PAGE_ENTRIES + 100 }, (_, i) => i * 2 + 1)
    for (const entry of entries) first.add(entry)
    await first.writePages(Infinity)
    // More was written than the "checkpoint" said; the reopened index only trusts its count.
    const trusted = 9 * PAGE_ENTRIES + 3
    const file = new CountingFile(io)
    const reopened = new BoundaryIndex(file, new IndexPages(64), trusted)
    reopened.add(entries[trusted]! + 1_000_000)
    const sorted = [...entries.slice(0, trusted), entries[trusted]! + 1_000_000]
    await checkAll(reopened, sorted, [0, 1, 2, 1023, 1024, entries[trusted - 1]!, entries[trusted - 1]! + 1, 2_000_000])
    const reads = file.reads
    expect(await value(reopened.floor(entries[5 * PAGE_ENTRIES + 9]! + 1))).toBe(entries[5 * PAGE_ENTRIES + 9])
    expect(file.reads - reads).toBeLessThanOrEqual(1)
  })

  test('truncate drops only staged entries beyond a position', () => {
    const index = new BoundaryIndex(undefined, undefined)
    for (const entry of [5, 10, 15, 20]) index.add(entry)
    index.truncate(12)
    expect(index.count).toBe(2)
    expect(index.countAtMost(100)).toBe(2)
    index.add(13)
    expect(index.ceil(10)).toBe(13)
    expect(() => index.add(13)).toThrow()
  })

  test('reopened from a file an earlier version left mid-page: writes catch up to a page end', async () => {
    const io = new SimIo()
    const entries = Array.from({ length: 2 * PAGE_ENTRIES + 10 }, (_, i) => i * 5 + 2)
    const old = new CountingFile(io)
    await old.write(new Uint8Array(new Float64Array(entries.slice(0, 700)).buffer), 0)
    const reopened = new BoundaryIndex(new CountingFile(io), new IndexPages(8), 700)
    for (const entry of entries.slice(700)) reopened.add(entry)
    expect(reopened.tailAtMost(Infinity)).toEqual(entries.slice(2 * PAGE_ENTRIES))
    await reopened.writePages(Infinity)
    expect(reopened.writtenCount).toBe(2 * PAGE_ENTRIES)
    await checkAll(reopened, entries, [0, 2, 3, entries[699]!, entries[700]!, entries.at(-1)!])
  })

  test('a file shorter than its count is an error, not a wrong answer', async () => {
    const io = new SimIo()
    const index = new BoundaryIndex(new CountingFile(io), undefined, 10)
    await expect(value(index.rank(5))).rejects.toThrow(/fewer than/)
  })

  test('property: any entries, any write points, any probes match a sorted array', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 3000 }),
        fc.array(fc.nat(), { maxLength: 5 }),
        fc.array(fc.integer({ min: 0, max: 130_000 }), { minLength: 1, maxLength: 20 }),
        async (gaps, writePoints, probes) => {
          const io = new SimIo()
          const index = new BoundaryIndex(new CountingFile(io), new IndexPages(3))
          const sorted: number[] = []
          let at = 0
          for (const gap of gaps) sorted.push((at += gap))
          const cuts = writePoints.map((point) => point % sorted.length).sort((a, b) => a - b)
          let next = 0
          for (const cut of cuts) {
            for (; next <= cut; next++) index.add(sorted[next]!)
            await index.writePages(sorted[cut]!)
            expect(index.writtenCount % PAGE_ENTRIES).toBe(0)
          }
          for (; next < sorted.length; next++) index.add(sorted[next]!)
          // As a checkpoint stores it: the file's pages, then the tail beside them.
          await index.writePages(Infinity)
          const tail = index.tailAtMost(Infinity)
          expect(tail.length).toBeLessThan(PAGE_ENTRIES)
          const reopened = new BoundaryIndex(new CountingFile(io), new IndexPages(3), sorted.length - tail.length, tail)
          await checkAll(index, sorted, probes)
          await checkAll(reopened, sorted, probes)
        },
      ),
      { numRuns: 60 },
    )
  })
})
