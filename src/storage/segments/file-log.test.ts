// The read cache of storage/segments/file-log.ts on the simulated disk: which reads reach the data
// file, that bytes are right on both sides of the cache boundary, and that the budget is
// shared by every stream (least recently used first), and the pooled buffers file reads
// land in. Also the writes replay holds back, and the staging blocks it reuses.

import { describe, expect, test } from 'vitest'
import { SimIo } from '../../io/sim.js'
import type { IoFile } from '../../io/types.js'
import { DataFiles } from './data-files.js'
import { FileLog } from './file-log.js'
import { READ_BUFFERS_MAX } from './read-buffers.js'

const EMPTY = { length: 0, appends: 0, messages: undefined }

/** SimIo that counts the reads and writes that reach a data file (index files aside). */
class CountingIo extends SimIo {
  reads = 0
  writes = 0

  override read(file: IoFile, buffer: Uint8Array, position: number): Promise<number> {
    if (file.path.endsWith('.data')) this.reads++
    return super.read(file, buffer, position)
  }

  override writev(file: IoFile, buffers: readonly Uint8Array[], position: number, datasync: boolean): Promise<void> {
    if (file.path.endsWith('.data')) this.writes++
    return super.writev(file, buffers, position, datasync)
  }
}

async function setup(readCacheBytes: number): Promise<{ io: CountingIo; files: DataFiles }> {
  const io = new CountingIo()
  await io.mkdirp('/d')
  return { io, files: new DataFiles(io, (id, kind) => `/d/${id}.${kind}`, 16, readCacheBytes) }
}

/** Appends `chunks` (each its own commit), then writes them to the data file. */
async function fill(log: FileLog, chunks: string[]): Promise<void> {
  for (const chunk of chunks) {
    log.append(Buffer.from(chunk))
    log.commit(log.length)
  }
  await log.flush()
}

async function readText(log: FileLog, from: number, to: number): Promise<string> {
  return Buffer.concat(await log.read(from, to)).toString()
}

const chunks = (prefix: string, count: number): string[] => Array.from({ length: count }, (_, i) => `${prefix}${String(i).padStart(3, '0')};`)

// Appends over 4 KiB are kept as parts of their own, so the cache trims them one by one.
const big = (prefix: string, count: number): string[] => Array.from({ length: count }, (_, i) => `${prefix}${i}`.padEnd(5000, '.'))

describe('FileLog read cache', () => {
  test('written bytes are read back from memory, without a file read', async () => {
    const { io, files } = await setup(1024 * 1024)
    const log = new FileLog(files, 1, EMPTY)
    const data = chunks('a', 50)
    await fill(log, data)
    expect(log.flushedLength).toBe(data.join('').length)
    expect(await readText(log, 0, log.length)).toBe(data.join(''))
    expect(await readText(log, 7, 93)).toBe(data.join('').slice(7, 93))
    expect(io.reads).toBe(0)
    expect(files.readCacheUsed).toBe(log.length)
  })

  test('with no budget every read of written bytes goes to the file', async () => {
    const { io, files } = await setup(0)
    const log = new FileLog(files, 1, EMPTY)
    const data = chunks('b', 20)
    await fill(log, data)
    expect(await readText(log, 0, log.length)).toBe(data.join(''))
    expect(io.reads).toBe(1)
    expect(files.readCacheUsed).toBe(0)
  })

  test('the budget is shared: the least recently used stream gives up its oldest bytes first', async () => {
    const { io, files } = await setup(30_000)
    const a = new FileLog(files, 1, EMPTY)
    const b = new FileLog(files, 2, EMPTY)
    const aData = big('a', 4).join('')
    await fill(a, big('a', 4))
    await fill(b, big('b', 2))
    expect(files.readCacheUsed).toBe(30_000)
    await fill(b, big('B', 2))
    // 40,000 written, 30,000 allowed: a (least recently used) gave up its two oldest parts.
    expect(files.readCacheUsed).toBe(30_000)
    expect(await readText(b, 0, 20_000)).toBe([...big('b', 2), ...big('B', 2)].join(''))
    expect(await readText(a, 10_000, 20_000)).toBe(aData.slice(10_000))
    expect(io.reads).toBe(0)
    expect(await readText(a, 5000, 20_000)).toBe(aData.slice(5000))
    expect(io.reads).toBe(1)
    // a was just read, so b is now the least recently used: b gives up its oldest part.
    await fill(a, big('A', 1))
    expect(await readText(b, 5000, 20_000)).toBe([...big('b', 2), ...big('B', 2)].join('').slice(5000))
    expect(await readText(a, 10_000, 25_000)).toBe((aData + big('A', 1).join('')).slice(10_000))
    expect(io.reads).toBe(1)
    expect(await readText(b, 0, 5000)).toBe(big('b', 1).join(''))
    expect(io.reads).toBe(2)
    // One stream alone over the budget trims its own oldest parts.
    await fill(a, big('z', 6))
    expect(files.readCacheUsed).toBe(30_000)
    expect(await readText(a, 25_000, 55_000)).toBe(big('z', 6).join(''))
    expect(io.reads).toBe(2)
  })

  test('reads spanning file, cached and staged bytes join them in order', async () => {
    const { io, files } = await setup(10_000)
    const log = new FileLog(files, 1, EMPTY)
    await fill(log, big('c', 3)) // 15,000 written, the newest 10,000 cached
    log.append(Buffer.from('staged;'))
    const all = big('c', 3).join('') + 'staged;'
    expect(await readText(log, 5000, all.length)).toBe(all.slice(5000))
    expect(io.reads).toBe(0)
    expect(await readText(log, 4000, all.length)).toBe(all.slice(4000))
    expect(io.reads).toBe(1)
  })

  test('a released log gives its cached bytes back to the budget', async () => {
    const { files } = await setup(1024)
    const log = new FileLog(files, 1, EMPTY)
    await fill(log, chunks('d', 10))
    expect(files.readCacheUsed).toBe(50)
    log.release()
    expect(files.readCacheUsed).toBe(0)
  })

  test('file reads land in pooled buffers lent for one turn; `keep` reads get their own', async () => {
    const { io, files } = await setup(0)
    const a = new FileLog(files, 1, EMPTY)
    const b = new FileLog(files, 2, EMPTY)
    await fill(a, chunks('a', 10))
    await fill(b, chunks('b', 10))
    const [lent] = await a.read(0, 50)
    expect(Buffer.from(lent!).toString()).toBe(chunks('a', 10).join(''))
    await new Promise((resolve) => setImmediate(resolve))
    // Next turn: the buffer went back to the pool and b's read reuses it.
    const [next] = await b.read(0, 50)
    expect(next!.buffer).toBe(lent!.buffer)
    expect(next!.byteOffset).toBe(lent!.byteOffset)
    expect(Buffer.from(lent!).toString()).toBe(chunks('b', 10).join(''))
    const [kept] = await a.read(0, 50, true)
    await new Promise((resolve) => setImmediate(resolve))
    await b.read(0, 50)
    expect(kept!.buffer === next!.buffer && kept!.byteOffset === next!.byteOffset).toBe(false)
    expect(Buffer.from(kept!).toString()).toBe(chunks('a', 10).join(''))
    expect(io.reads).toBe(4)
  })

  test('more concurrent file reads than pooled buffers: the rest wait, and each gets its own bytes', async () => {
    const { io, files } = await setup(0)
    const count = READ_BUFFERS_MAX * 3
    const logs = Array.from({ length: count }, (_, i) => new FileLog(files, i + 1, EMPTY))
    for (const [i, log] of logs.entries()) await fill(log, chunks(`s${i}-`, 20))
    // Each reader copies its bytes out as soon as its read resolves, as a response does.
    const texts = await Promise.all(logs.map((log) => Promise.resolve(log.read(0, log.length)).then((parts) => Buffer.concat(parts).toString())))
    expect(texts).toEqual(logs.map((_, i) => chunks(`s${i}-`, 20).join('')))
    expect(io.reads).toBe(count)
    expect(files.readBuffers.size).toBe(READ_BUFFERS_MAX)
  })
})

describe('FileLog writes held during replay', () => {
  const turns = async (count: number): Promise<void> => {
    for (let i = 0; i < count; i++) await new Promise((resolve) => setImmediate(resolve))
  }

  test('committed bytes wait in memory, readable, until writes resume', async () => {
    const { io, files } = await setup(1024 * 1024)
    files.holdWrites()
    const logs = [1, 2, 3].map((id) => new FileLog(files, id, EMPTY))
    // 40 KiB per stream: past FLUSH_BYTES, which would otherwise write on the next turn.
    const data = big('h', 8)
    for (const log of logs) for (const chunk of data) {
      log.append(Buffer.from(chunk))
      log.commit(log.length)
    }
    await turns(5)
    expect(io.writes).toBe(0)
    for (const log of logs) expect(await readText(log, 0, log.length)).toBe(data.join(''))
    files.resumeWrites()
    await Promise.all(logs.map((log) => log.flush()))
    expect(io.writes).toBe(3)
    for (const [index, log] of logs.entries()) {
      expect(log.flushedLength).toBe(log.length)
      expect(Buffer.from(io.contents(`/d/${index + 1}.data`)!).toString()).toBe(data.join(''))
    }
  })

  test('past 4 MiB held bytes are written during replay', async () => {
    const { io, files } = await setup(0)
    files.holdWrites()
    const log = new FileLog(files, 1, EMPTY)
    const part = Buffer.alloc(64 * 1024, 7)
    for (let i = 0; i < 4 * 16; i++) {
      log.append(part)
      log.commit(log.length)
    }
    await turns(5)
    expect(io.writes).toBe(0)
    log.append(part)
    log.commit(log.length)
    await turns(5)
    expect(io.writes).toBe(1)
    expect(log.flushedLength).toBe(log.length)
  })
})

describe('FileLog staging blocks reused during replay', () => {
  test('every byte lands in the file as appended, from a source buffer reused after each append, in far fewer blocks than bytes', async () => {
    // Writes take a few turns, so appends go on while a block's earlier bytes are in flight.
    class SlowIo extends CountingIo {
      override async writev(file: IoFile, buffers: readonly Uint8Array[], position: number, datasync: boolean): Promise<void> {
        for (let turn = 0; turn < 3; turn++) await new Promise((resolve) => setImmediate(resolve))
        return super.writev(file, buffers, position, datasync)
      }
    }
    const io = new SlowIo()
    await io.mkdirp('/d')
    const files = new DataFiles(io, (id, kind) => `/d/${id}.${kind}`, 16, 16 * 1024 * 1024)
    files.holdWrites()
    const logs = [new FileLog(files, 1, EMPTY), new FileLog(files, 2, EMPTY)]
    const expected: Buffer[][] = [[], []]
    // One scratch buffer for every append, as replay hands out views of its WAL buffer.
    const scratch = Buffer.alloc(300)
    let total = 0
    for (let i = 0; total < 24 * 1024 * 1024; i++) {
      const length = 1 + ((i * 7919) % 299)
      scratch.fill(i % 251, 0, length)
      scratch.writeUInt32LE(i, 0)
      const log = logs[i % 2]!
      log.append(scratch.subarray(0, length), undefined, true)
      log.commit(log.length)
      expected[i % 2]!.push(Buffer.from(scratch.subarray(0, length)))
      total += length
      // Replay waits here before each WAL read, and the disk completes writes meanwhile.
      if (i % 5000 === 0) {
        const paused = files.replayPause()
        if (paused !== undefined) await paused
      }
      if (i % 300 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
    const allocated = files.replayBlocks!.allocatedBytes
    files.resumeWrites()
    await Promise.all(logs.map((log) => log.flush()))
    for (const [index, log] of logs.entries()) {
      expect(log.flushedLength).toBe(log.length)
      expect(Buffer.compare(Buffer.from(io.contents(`/d/${index + 1}.data`)!), Buffer.concat(expected[index]!))).toBe(0)
    }
    // Without reuse, replay made a block for every 64 KiB it staged.
    expect(allocated).toBeLessThan(total / 2)
  })

  test('replay waits for a sweep still writing once the held bytes pass the bound', async () => {
    let open!: () => void
    const gate = new Promise<void>((resolve) => (open = resolve))
    class GatedIo extends CountingIo {
      override async writev(file: IoFile, buffers: readonly Uint8Array[], position: number, datasync: boolean): Promise<void> {
        await gate
        return super.writev(file, buffers, position, datasync)
      }
    }
    const io = new GatedIo()
    await io.mkdirp('/d')
    const files = new DataFiles(io, (id, kind) => `/d/${id}.${kind}`, 16, 0)
    files.holdWrites()
    const log = new FileLog(files, 1, EMPTY)
    const part = Buffer.alloc(64 * 1024, 3)
    const stage = (parts: number): void => {
      for (let i = 0; i < parts; i++) {
        log.append(part, undefined, true)
        log.commit(log.length)
      }
    }
    stage(4 * 16 + 1)
    expect(files.replayPause()).toBeUndefined()
    stage(4 * 16 + 1)
    const paused = files.replayPause()
    expect(paused).toBeInstanceOf(Promise)
    let resumed = false
    void paused!.then(() => (resumed = true))
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
    expect(resumed).toBe(false)
    open()
    await paused
    // The held bytes went to the next sweep once the first finished.
    await log.flush()
    expect(log.flushedLength).toBe(log.length)
    expect(Buffer.from(io.contents('/d/1.data')!).every((byte) => byte === 3)).toBe(true)
  })
})

describe('FileLog segments', () => {
  test('bytes roll into segment files at fixed boundaries and read back across them', async () => {
    const io = new CountingIo()
    await io.mkdirp('/d')
    const files = new DataFiles(io, (id, kind, segment) => `/d/${id}.${kind}.${segment}`, 16, 0, 10)
    const log = new FileLog(files, 1, EMPTY)
    const data = chunks('s', 9) // 9 × 5 bytes over segments of 10
    await fill(log, data)
    const all = data.join('')
    expect(Buffer.from(io.contents('/d/1.data.0')!).toString()).toBe(all.slice(0, 10))
    expect(Buffer.from(io.contents('/d/1.data.4')!).toString()).toBe(all.slice(40, 45))
    for (const [from, to] of [[0, 45], [9, 11], [10, 20], [3, 38], [44, 45]] as const) expect(await readText(log, from, to)).toBe(all.slice(from, to))
    // Reopened from its length alone (as after a checkpoint), it appends into the right segment.
    const again = new FileLog(files, 1, { length: 45, appends: 9, messages: undefined })
    again.append(Buffer.from('tail!!'))
    again.commit(again.length)
    await again.flush()
    expect(await readText(again, 40, 51)).toBe(all.slice(40) + 'tail!!')
    expect(Buffer.from(io.contents('/d/1.data.4')!).toString()).toBe(all.slice(40) + 'tail!')
    expect(Buffer.from(io.contents('/d/1.data.5')!).toString()).toBe('!')
  })
})
