// storage/disk-budget.ts — what the WAL may take of the data directory's file system: the
// segment size, the reserve left free beside it, and how much WAL a checkpoint waits for.
// Each is the operator's when given; otherwise it scales with the file system's size, so a
// small disk fills and heals at the defaults (a 64 MiB segment and a 64 MiB reserve on a
// 160 MiB disk left no room for a second segment once the first was full).

const MiB = 1024 * 1024

/** The sizes a disk of this size or more gets (ringstream's fixed defaults before scaling). */
export const DISK_BYTES_FULL_BUDGET = 1024 * MiB
/** Largest scaled WAL segment: datasync on a preallocated segment costs the same at any
 * size, and each roll zeroes one in the background. */
const WAL_SEGMENT_BYTES_MAX = 64 * MiB
/** Smallest scaled WAL segment: the default largest append (an append is one record, and a
 * record does not span segments). */
const WAL_SEGMENT_BYTES_MIN = 16 * MiB
/** Most WAL a checkpoint waits for: bounds replay after a crash. */
const CHECKPOINT_WAL_BYTES_MAX = 256 * MiB

export interface DiskBudget {
  readonly walSegmentBytes: number
  readonly diskReserveBytes: number
  readonly checkpointWalBytes: number
}

/** The operator's values; undefined: scaled to the disk. */
export type DiskBudgetGiven = { readonly [K in keyof DiskBudget]?: number | undefined }

/**
 * The budget for a file system of `diskBytes` (statfs blocks × block size; undefined: not
 * known, as on the simulator, which gets the full-size values):
 * - WAL segment: an eighth of the disk, 16–64 MiB, never less than the largest append;
 * - reserve: one segment, since the records a segment holds are copied into the stream
 *   data files out of it (a smaller reserve lets those copies fill the disk before the WAL
 *   sees it full, and a checkpoint that cannot write cannot free anything either);
 * - checkpoint every quarter of the disk of WAL, at least two segments, at most 256 MiB.
 * Whole MiB, so the startup line reads well. From 1 GiB on: 64 MiB, 64 MiB, 256 MiB.
 */
export function diskBudget(given: DiskBudgetGiven, diskBytes: number | undefined, appendBytesMax: number): DiskBudget {
  const disk = diskBytes ?? DISK_BYTES_FULL_BUDGET
  const mib = (bytes: number): number => Math.floor(bytes / MiB) * MiB
  const clamp = (value: number, min: number, max: number): number => Math.min(max, Math.max(min, value))
  const walSegmentBytes = given.walSegmentBytes ?? Math.max(appendBytesMax, clamp(mib(disk / 8), WAL_SEGMENT_BYTES_MIN, WAL_SEGMENT_BYTES_MAX))
  return {
    walSegmentBytes,
    diskReserveBytes: given.diskReserveBytes ?? walSegmentBytes,
    checkpointWalBytes: given.checkpointWalBytes ?? clamp(mib(disk / 4), 2 * walSegmentBytes, Math.max(CHECKPOINT_WAL_BYTES_MAX, 2 * walSegmentBytes)),
  }
}

/** True when any value was scaled rather than given (worth a line in the startup log). */
export function isScaled(given: DiskBudgetGiven): boolean {
  return given.walSegmentBytes === undefined || given.diskReserveBytes === undefined || given.checkpointWalBytes === undefined
}
