// storage/wal/wal-source.ts — whole WAL batches read back from a given LSN while the log is
// being written: a leader sends them to a replica that is behind (cluster/), a replica
// applies the batches it wrote but has not applied yet. The bytes are exactly the frames
// on disk, checksums included, so the reader checks each one before handing it out.

import type { Io } from '../../io/types.js'
import type { DataPaths } from '../paths.js'
import { segmentBases } from './wal.js'
import { FRAME_HEADER_BYTES, checkFrame } from './wal-record.js'

export interface WalFrames {
  /** Whole batches from the asked LSN on (empty: nothing written there yet). */
  readonly bytes: Buffer
  readonly endLsn: number
}

/** The LSN is older than the oldest segment kept: its batches were retired by checkpoints. */
export class WalRetiredError extends Error {}

/**
 * Batches from `fromLsn` (a batch boundary; segments roll at batch boundaries, so the
 * last segment starting at or before it holds it) up to `toLsn` (the log's end as the writer
 * knows it), at most about `bytesMax` (always at least one batch when there is one).
 */
export async function readWalFrames(io: Io, paths: DataPaths, fromLsn: number, toLsn: number, bytesMax: number): Promise<WalFrames> {
  if (fromLsn >= toLsn) return { bytes: Buffer.alloc(0), endLsn: fromLsn }
  const bases = await segmentBases(io, paths)
  const base = bases.filter((each) => each <= fromLsn).pop()
  if (base === undefined) throw new WalRetiredError(`WAL LSN ${fromLsn} is retired (oldest kept: ${bases[0] ?? 'none'})`)
  const file = await io.open(paths.walSegment(base), false)
  try {
    const size = await io.size(file)
    const start = fromLsn - base
    const want = Math.min(size - start, toLsn - fromLsn, Math.max(bytesMax, FRAME_HEADER_BYTES))
    let buffer = Buffer.allocUnsafe(want)
    let length = await io.read(file, buffer, start)
    if (length >= FRAME_HEADER_BYTES) {
      const first = FRAME_HEADER_BYTES + buffer.readUInt32LE(4)
      if (first > length && start + first <= size) {
        buffer = Buffer.allocUnsafe(first)
        length = await io.read(file, buffer, start)
      }
    }
    let at = 0
    while (at < length) {
      const frame = checkFrame(buffer, at, length)
      if (frame.kind !== 'ok') break
      at += FRAME_HEADER_BYTES + frame.bodyLength
    }
    return { bytes: buffer.subarray(0, at), endLsn: fromLsn + at }
  } finally {
    await io.close(file)
  }
}
