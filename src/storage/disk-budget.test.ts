// storage/disk-budget.ts: the WAL's sizes scale with the disk when not given, and a disk of
// 1 GiB or more keeps the full-size ones.

import { expect, test } from 'vitest'
import { diskBudget, isScaled } from './disk-budget.js'

const MiB = 1024 * 1024
const APPEND = 16 * MiB

test('from 1 GiB on (and when the disk is not known): 64 MiB segments, 64 MiB reserve, a checkpoint every 256 MiB', () => {
  const full = { walSegmentBytes: 64 * MiB, diskReserveBytes: 64 * MiB, checkpointWalBytes: 256 * MiB }
  expect(diskBudget({}, 1024 * MiB, APPEND)).toEqual(full)
  expect(diskBudget({}, 2 ** 40, APPEND)).toEqual(full)
  expect(diskBudget({}, undefined, APPEND)).toEqual(full)
})

test('a small disk: an eighth of it per segment and as much kept free, a quarter of it between checkpoints', () => {
  // A 160 MiB ext4 image has 144.4 MiB of data blocks: whole MiB, rounded down.
  expect(diskBudget({}, 144.4 * MiB, APPEND)).toEqual({ walSegmentBytes: 18 * MiB, diskReserveBytes: 18 * MiB, checkpointWalBytes: 36 * MiB })
  expect(diskBudget({}, 512 * MiB, APPEND)).toEqual({ walSegmentBytes: 64 * MiB, diskReserveBytes: 64 * MiB, checkpointWalBytes: 128 * MiB })
  // The floor: a segment holds the largest append; checkpoints come at least every two segments.
  expect(diskBudget({}, 64 * MiB, APPEND)).toEqual({ walSegmentBytes: 16 * MiB, diskReserveBytes: 16 * MiB, checkpointWalBytes: 32 * MiB })
  expect(diskBudget({}, 64 * MiB, 40 * MiB)).toEqual({ walSegmentBytes: 40 * MiB, diskReserveBytes: 40 * MiB, checkpointWalBytes: 80 * MiB })
})

test('given values win, and the scaled ones follow a given segment size', () => {
  const given = { walSegmentBytes: 64 * MiB, diskReserveBytes: 64 * MiB, checkpointWalBytes: 256 * MiB }
  expect(diskBudget(given, 144 * MiB, APPEND)).toEqual(given)
  expect(isScaled(given)).toBe(false)
  expect(diskBudget({ walSegmentBytes: 256 * 1024 }, 144 * MiB, 64 * 1024)).toEqual({ walSegmentBytes: 256 * 1024, diskReserveBytes: 256 * 1024, checkpointWalBytes: 36 * MiB })
  expect(diskBudget({ walSegmentBytes: 512 * MiB }, 2 ** 40, APPEND)).toEqual({ walSegmentBytes: 512 * MiB, diskReserveBytes: 512 * MiB, checkpointWalBytes: 1024 * MiB })
  expect(isScaled({ diskReserveBytes: 0 })).toBe(true)
})
