// storage/wal/wal.ts starting a retired segment over in place (the simulator): when a
// checkpoint has retired the whole log and no new segment fits beside the reserve, the
// segment being written is zeroed and renamed to the log's end. A power cut before, during
// or after any step of it recovers every record written since the checkpoint, and the log
// goes on from there.

import { expect, test } from 'vitest'
import type { Io } from '../../io/types.js'
import { SimIo } from '../../io/sim.js'
import { dataPaths } from '../paths.js'
import type { Change } from '../types.js'
import { WalWriter, preallocate } from './wal.js'
import { replayWal } from './wal-reader.js'
import { encodeRecord } from './wal-record.js'

const paths = dataPaths('/d')
const SEGMENT = 64 * 1024

const record = (text: string): Uint8Array[] => {
  const change: Change = { kind: 'append', streamId: 1, position: 0, chunk: { bytes: Buffer.from(text), messageEnds: undefined }, close: false, producer: undefined, streamSeq: undefined }
  return encodeRecord(change, 1)
}

/** The texts of the records from `fromLsn` on, and the writable tail. */
async function replay(io: Io, fromLsn: number): Promise<{ texts: string[]; tail: Awaited<ReturnType<typeof replayWal>> }> {
  const texts: string[] = []
  const tail = await replayWal(io, paths, fromLsn, false, ({ change }) => {
    if (change.kind === 'append') texts.push(Buffer.from(change.chunk!.bytes).toString())
  })
  return { texts, tail }
}

/** The simulator, and while `taking` the disks a power cut would leave before each write,
 * sync and rename: with nothing unsynced kept, part of it (a torn write), and all of it. */
function tapped(sim: SimIo): { io: Io; images: Array<{ before: string; disk: SimIo }>; take(on: boolean): void } {
  const images: Array<{ before: string; disk: SimIo }> = []
  let taking = false
  const image = (before: string): void => {
    if (!taking) return
    for (const keep of [0, 1000, Number.MAX_SAFE_INTEGER]) images.push({ before: `${before}, ${keep} unsynced bytes kept`, disk: sim.crashed(keep) })
  }
  const io: Io = {
    name: 'tapped',
    open: (path, create) => sim.open(path, create),
    writev: (file, buffers, position, datasync) => (image(`writev at ${position} of ${file.path}`), sim.writev(file, buffers, position, datasync)),
    read: (file, buffer, position) => sim.read(file, buffer, position),
    datasync: (file) => (image(`datasync of ${file.path}`), sim.datasync(file)),
    size: (file) => sim.size(file),
    truncate: (file, size) => sim.truncate(file, size),
    close: (file) => sim.close(file),
    mkdirp: (dir) => sim.mkdirp(dir),
    list: (dir) => sim.list(dir),
    rename: (from, to) => (image(`rename to ${to}`), sim.rename(from, to)),
    unlink: (path) => sim.unlink(path),
    syncDir: (dir) => (image(`syncDir of ${dir}`), sim.syncDir(dir)),
  }
  return { io, images, take: (on) => (taking = on) }
}

/** A log of one nearly full segment whose every record a checkpoint has stored; no new
 * segment fits beside the reserve, the reserve itself is free. */
async function fullRetiredLog(io: Io): Promise<{ wal: WalWriter; checkpointLsn: number }> {
  await io.mkdirp(paths.walDir)
  const file = await preallocate(io, paths.walSegment(0), SEGMENT)
  await io.syncDir(paths.walDir)
  const wal = new WalWriter(io, paths, SEGMENT, { file, baseLsn: 0, capacity: SEGMENT, position: 0 }, async (bytes) => bytes === 0)
  wal.prepareSpare()
  for (let i = 0; i < 55; i++) await wal.append(record(`old-${i};`.padEnd(1000, '.')), true)
  wal.retiredLsn = wal.lsn
  return { wal, checkpointLsn: wal.lsn }
}

test('a roll with no room for a new segment starts the retired one over; a power cut at any step loses nothing', async () => {
  const sim = new SimIo()
  const { io, images, take } = tapped(sim)
  const { wal, checkpointLsn } = await fullRetiredLog(io)
  take(true)
  // Past the room left (the segment's last 4 KiB are for deletes): a roll, into the same file.
  const end = await wal.append(record('new-1;'.padEnd(8000, '.')), true)
  take(false)
  expect(wal.currentSegmentBase).toBe(checkpointLsn)
  expect(end).toBeGreaterThan(checkpointLsn)
  expect(await sim.list(paths.walDir)).toEqual([paths.walSegment(checkpointLsn).slice(paths.walDir.length + 1)])
  await wal.close()
  images.push({ before: 'the end', disk: sim.crashed() })
  // Zeroing (one write, one sync), the rename, its directory sync, the new record's write.
  expect(images.length).toBe(5 * 3 + 1)
  for (const { before, disk } of images) {
    const { texts, tail } = await replay(disk, checkpointLsn)
    expect(texts, before).toEqual(before === 'the end' ? ['new-1;'.padEnd(8000, '.')] : [])
    expect(tail, before).toBeDefined()
    // The log goes on from what survived, and a later restart reads it all.
    const after = new WalWriter(disk, paths, SEGMENT, { file: tail!.file, baseLsn: tail!.baseLsn, capacity: tail!.capacity, position: tail!.position })
    expect(after.lsn, before).toBe(before === 'the end' ? end : checkpointLsn)
    await after.append(record('next;'), true)
    await after.close()
    expect((await replay(disk.crashed(), checkpointLsn)).texts, before).toEqual([...texts, 'next;'])
  }
})

test('the disk-full timer starts a retired segment over between batches; appends queued meanwhile go to the new LSNs', async () => {
  const sim = new SimIo()
  const { wal, checkpointLsn } = await fullRetiredLog(sim)
  // Not while a batch is in flight, nor with anything written since the checkpoint.
  const inFlight = wal.append(record('in flight;'), true)
  await new Promise((resolve) => setImmediate(resolve))
  expect(await wal.reuseRetired()).toBe(false)
  const afterFlight = await inFlight
  expect(await wal.reuseRetired()).toBe(false)
  wal.retiredLsn = afterFlight
  const reusing = wal.reuseRetired()
  const queued = wal.append(record('queued;'), true)
  expect(await reusing).toBe(true)
  const end = await queued
  expect(wal.currentSegmentBase).toBe(afterFlight)
  expect(end).toBe(wal.lsn)
  // Nothing to reclaim at the start of a segment.
  wal.retiredLsn = end
  await wal.close()
  const { texts } = await replay(sim.crashed(), afterFlight)
  expect(texts).toEqual(['queued;'])
  expect(afterFlight).toBeGreaterThan(checkpointLsn)
})

test('no start-over without the reserve free, nor from an empty segment', async () => {
  const sim = new SimIo()
  await sim.mkdirp(paths.walDir)
  const file = await preallocate(sim, paths.walSegment(0), SEGMENT)
  let free = false
  const wal = new WalWriter(sim, paths, SEGMENT, { file, baseLsn: 0, capacity: SEGMENT, position: 0 }, async (bytes) => bytes === 0 && free)
  wal.retiredLsn = 0
  free = true
  expect(await wal.reuseRetired()).toBe(false)
  await wal.append(record('one;'), true)
  wal.retiredLsn = wal.lsn
  free = false
  expect(await wal.reuseRetired()).toBe(false)
  free = true
  expect(await wal.reuseRetired()).toBe(true)
  expect(wal.currentSegmentBase).toBe(wal.lsn)
  expect(await wal.reuseRetired()).toBe(false)
  await wal.close()
})
