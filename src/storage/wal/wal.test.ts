// storage/wal/wal.ts on a full disk (the simulator; the real one is test/integration/disk-full.test.ts):
// no segment is taken without the reserve beside it, appends that need one fail with ENOSPC,
// and deletes still go into the end of the segment kept for them.

import { expect, test } from 'vitest'
import { isIoError } from '../../io/types.js'
import { SimIo } from '../../io/sim.js'
import { dataPaths } from '../paths.js'
import { WalWriter, preallocate } from './wal.js'

const paths = dataPaths('/d')
const SEGMENT = 64 * 1024

test('without room for a segment and the reserve, appends that need one fail; deletes use the kept end', async () => {
  const io = new SimIo()
  await io.mkdirp(paths.walDir)
  const file = await preallocate(io, paths.walSegment(0), SEGMENT)
  let room = true
  const asked: number[] = []
  const wal = new WalWriter(io, paths, SEGMENT, { file, baseLsn: 0, capacity: SEGMENT, position: 0 }, async (bytes) => {
    asked.push(bytes)
    return room
  })
  let full = 0
  wal.onFull = () => full++
  room = false
  wal.prepareSpare()
  const record = (bytes: number): Uint8Array[] => [new Uint8Array(bytes).fill(7)]
  // Fill the segment up to its kept end (a sixteenth of a 64 KiB segment: 4 KiB).
  let written = 0
  for (;;) {
    const result = await wal.append(record(1000), false).then(
      () => 'ok',
      (error: unknown) => error,
    )
    if (result !== 'ok') {
      expect(isIoError(result, 'ENOSPC')).toBe(true)
      break
    }
    written++
  }
  expect(written).toBeGreaterThan(50)
  expect(full).toBe(1)
  // A roll asks for a segment; a spare for a segment and the current one's data copies.
  expect(asked).toEqual([2 * SEGMENT, SEGMENT, SEGMENT])
  expect(await io.list(paths.walDir)).not.toContain('spare.tmp')
  // A delete fits the kept end; an append queued with it is refused, the delete still lands.
  const [append, remove] = await Promise.allSettled([wal.append(record(1000), false), wal.append(record(100), false, true)])
  expect(append.status).toBe('rejected')
  expect(remove.status).toBe('fulfilled')
  // Room again: the next append rolls into a new segment.
  room = true
  await wal.append(record(1000), false)
  expect(wal.currentSegmentBase).toBeGreaterThan(0)
  await wal.close()
})

test('no background spare starts while a roll preallocates the spare path itself', async () => {
  const io = new SimIo()
  await io.mkdirp(paths.walDir)
  const file = await preallocate(io, paths.walSegment(0), SEGMENT)
  // The free-space answer the roll waits for is held back until the test releases it.
  let release: (allowed: boolean) => void = () => {}
  let asks = 0
  const wal = new WalWriter(io, paths, SEGMENT, { file, baseLsn: 0, capacity: SEGMENT, position: 0 }, () => {
    asks++
    return new Promise<boolean>((resolve) => (release = resolve))
  })
  const record = (bytes: number): Uint8Array[] => [new Uint8Array(bytes).fill(1)]
  // No spare yet: the second append's roll asks for space and preallocates inline.
  await wal.append(record(SEGMENT - 8 * 1024), false)
  expect(asks).toBe(0)
  const rolling = wal.append(record(8 * 1024), false)
  await new Promise((resolve) => setTimeout(resolve, 10))
  expect(asks).toBe(1)
  // The disk-full timer's "space is back" would start a spare now: it must wait for the roll.
  wal.prepareSpare()
  expect(asks).toBe(1)
  release(true)
  await rolling
  // The roll's own spare request comes after it; then the next roll renames a spare that exists.
  for (let i = 0; i < 20 && asks < 2; i++) await new Promise((resolve) => setTimeout(resolve, 5))
  expect(asks).toBe(2)
  release(true)
  const first = wal.currentSegmentBase
  await wal.append(record(SEGMENT - 16 * 1024), false)
  await wal.append(record(8 * 1024), false)
  expect(wal.currentSegmentBase).toBeGreaterThan(first)
  // close() waits for the spare the last roll started: let it have its space.
  for (let i = 0; i < 20 && asks < 3; i++) await new Promise((resolve) => setTimeout(resolve, 5))
  release(true)
  await wal.close()
})

test('appends queued behind a refused batch are refused too, even once room comes back', async () => {
  const io = new SimIo()
  await io.mkdirp(paths.walDir)
  const file = await preallocate(io, paths.walSegment(0), SEGMENT)
  let room = false
  let queueBehind: (() => void) | undefined
  const wal = new WalWriter(io, paths, SEGMENT, { file, baseLsn: 0, capacity: SEGMENT, position: 0 }, async () => {
    queueBehind?.()
    queueBehind = undefined
    return room
  })
  const record = (bytes: number): Uint8Array[] => [new Uint8Array(bytes).fill(7)]
  while (await wal.append(record(1000), false).then(() => true, () => false));
  // An append and a delete share a batch that needs a segment; while its roll is refused,
  // another append (staged on top of the first by the engine) queues; then room comes back.
  let behind: Promise<unknown> | undefined
  queueBehind = () => {
    behind = wal.append(record(1000), false).then(() => 'written', (error: unknown) => error)
  }
  wal.onFull = () => {
    room = true
  }
  const [append, remove] = await Promise.allSettled([wal.append(record(1000), false), wal.append(record(100), false, true)])
  expect(append.status).toBe('rejected')
  expect(remove.status).toBe('fulfilled')
  expect(behind).toBeDefined()
  expect(isIoError(await behind, 'ENOSPC')).toBe(true)
  await wal.close()
})
