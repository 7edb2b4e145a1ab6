// Replaying the WAL in chunks (storage/wal/wal-reader.ts) on the simulated disk: whatever the
// chunk size, replay sees the same records and the same tail as one whole-segment read,
// including frames that straddle chunk boundaries, a start in the middle of a segment
// (a checkpoint), a torn tail, and corruption in the middle.

import { describe, expect, test } from 'vitest'
import { SimIo } from '../../io/sim.js'
import { dataPaths } from '../paths.js'
import type { Change } from '../types.js'
import { WalWriter, preallocate } from './wal.js'
import { WalCorruptionError, replayWal } from './wal-reader.js'
import { type WalRecord, encodeRecord } from './wal-record.js'

const paths = dataPaths('/d')
const SEGMENT_BYTES = 64 * 1024
/** 1 byte (every read a boundary), odd sizes, and more than a segment (one read). */
const CHUNK_SIZES = [1, 7, 100, 4096, 1024 * 1024]

const append = (streamId: number, position: number, text: string, producer?: string): Change => ({
  kind: 'append',
  streamId,
  position,
  chunk: { bytes: Buffer.from(text), messageEnds: undefined },
  close: false,
  producer: producer === undefined ? undefined : { id: producer, epoch: 1, seq: position },
  streamSeq: undefined,
})

/** Writes `batches` of appends (sizes vary so frames land anywhere); returns the LSN after each batch. */
async function writeWal(io: SimIo, batches: number): Promise<number[]> {
  await io.mkdirp(paths.walDir)
  const file = await preallocate(io, paths.walSegment(0), SEGMENT_BYTES)
  const wal = new WalWriter(io, paths, SEGMENT_BYTES, { file, baseLsn: 0, capacity: SEGMENT_BYTES, position: 0 })
  const ends: number[] = []
  let position = 0
  for (let batch = 0; batch < batches; batch++) {
    const acks: Promise<number>[] = []
    for (let i = 0; i <= batch % 5; i++) {
      const text = `b${batch}r${i}:`.padEnd(3 + ((batch * 31 + i * 17) % 200), 'x')
      acks.push(wal.append(encodeRecord(append(1, position, text, i % 2 === 0 ? `p${i}` : undefined), 1000 + batch), true))
      position += text.length
    }
    ends.push(Math.max(...(await Promise.all(acks))))
  }
  await wal.close()
  return ends
}

/** Replays with `chunkBytes`; returns the records as comparable plain data and the tail. */
async function replay(io: SimIo, fromLsn: number, chunkBytes: number, salvage = false) {
  const records: unknown[] = []
  const tail = await replayWal(
    io,
    paths,
    fromLsn,
    salvage,
    ({ change, timeMs }: WalRecord) => {
      if (change.kind !== 'append') throw new Error(`unexpected ${change.kind}`)
      records.push({ timeMs, position: change.position, text: Buffer.from(change.chunk!.bytes).toString(), producer: change.producer })
    },
    chunkBytes,
  )
  if (tail !== undefined) await io.close(tail.file)
  return { records, tail: tail === undefined ? undefined : { ...tail, file: undefined } }
}

describe('WAL replay in chunks', () => {
  test('every chunk size replays the same records and tail, across segments', async () => {
    const io = new SimIo()
    const ends = await writeWal(io, 400)
    expect((await io.list(paths.walDir)).filter((name) => name.endsWith('.wal')).length).toBeGreaterThan(2)
    const whole = await replay(io, 0, 16 * 1024 * 1024)
    // Batch b holds (b % 5) + 1 records.
    expect(whole.records.length).toBe(ends.reduce((sum, _, batch) => sum + (batch % 5) + 1, 0))
    expect(whole.tail!.baseLsn + whole.tail!.position).toBe(ends.at(-1))
    for (const chunkBytes of CHUNK_SIZES) expect(await replay(io, 0, chunkBytes)).toEqual(whole)
  })

  test('starting at a checkpoint LSN in the middle of a segment skips what precedes it', async () => {
    const io = new SimIo()
    const ends = await writeWal(io, 200)
    const whole = await replay(io, 0, 16 * 1024 * 1024)
    const from = ends[120]!
    const after = await replay(io, from, 16 * 1024 * 1024)
    expect(after.records).toEqual(whole.records.slice(whole.records.length - after.records.length))
    expect(after.records.length).toBeLessThan(whole.records.length)
    for (const chunkBytes of CHUNK_SIZES) expect(await replay(io, from, chunkBytes)).toEqual(after)
  })

  test('a torn last batch is cut off whatever the chunk size', async () => {
    for (const chunkBytes of CHUNK_SIZES) {
      const io = new SimIo()
      const ends = await writeWal(io, 30)
      // Damage the last batch's body: nothing valid follows it, so it is a torn tail.
      io.flipBit(paths.walSegment(0), ends[28]! + 20)
      const { records, tail } = await replay(io, 0, chunkBytes)
      expect(tail!.position).toBe(ends[28])
      expect(tail!.droppedBytes).toBe(SEGMENT_BYTES - ends[28]!)
      expect(records.length).toBeGreaterThan(0)
      expect(io.contents(paths.walSegment(0))!.length).toBe(ends[28])
    }
  })

  test('corruption followed by valid batches refuses to start whatever the chunk size', async () => {
    for (const chunkBytes of CHUNK_SIZES) {
      const io = new SimIo()
      const ends = await writeWal(io, 30)
      io.flipBit(paths.walSegment(0), ends[10]! + 20)
      await expect(replay(io, 0, chunkBytes)).rejects.toBeInstanceOf(WalCorruptionError)
      const salvaged = await replay(io, 0, chunkBytes, true)
      expect(salvaged.tail!.position).toBe(ends[10])
    }
  })
})
