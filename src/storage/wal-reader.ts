// storage/wal-reader.ts — reading the WAL back at startup. Records are replayed in order
// from the checkpoint's LSN. The log ends at the first zeroed frame header or at the end
// of the last segment. A damaged frame with nothing valid after it is a torn tail (normal
// after a crash) and is cut off; a damaged frame followed by valid records is corruption
// in the middle: recovery refuses to start unless told to salvage.

import type { Io, IoFile } from '../io/types.js'
import { type DataPaths, segmentBase } from './paths.js'
import { FRAME_HEADER_BYTES, type WalRecord, checkFrame, forEachRecord } from './wal-record.js'

export class WalCorruptionError extends Error {
  constructor(message: string) {
    super(`WAL corruption: ${message}. The data directory was left untouched; restart with --salvage to drop everything from the damaged record on.`)
    this.name = 'WalCorruptionError'
  }
}

export interface WalTail {
  /** The segment to continue writing, positioned after the last valid record. */
  readonly file: IoFile
  readonly baseLsn: number
  readonly capacity: number
  readonly position: number
  /** Bytes cut from a torn or (with salvage) corrupt tail, for the startup log. */
  readonly droppedBytes: number
}

interface Segment {
  readonly base: number
  readonly path: string
}

async function readWhole(io: Io, file: IoFile): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(await io.size(file))
  const read = await io.read(file, buffer, 0)
  return buffer.subarray(0, read)
}

/** True when any valid frame starts at or after `from` (byte by byte; error path only). */
function hasValidFrameAfter(buffer: Buffer, from: number): boolean {
  for (let at = from; at + FRAME_HEADER_BYTES <= buffer.length; at++) {
    if (checkFrame(buffer, at, buffer.length).kind === 'ok') return true
  }
  return false
}

/**
 * Replays every record at or after `fromLsn` through `apply`, then returns the writable tail.
 * When there is no segment yet, returns undefined (the caller creates the first one).
 */
export async function replayWal(
  io: Io,
  paths: DataPaths,
  fromLsn: number,
  salvage: boolean,
  apply: (record: WalRecord) => void,
): Promise<WalTail | undefined> {
  const segments: Segment[] = []
  for (const name of await io.list(paths.walDir)) {
    const base = segmentBase(name)
    if (base !== undefined) segments.push({ base, path: `${paths.walDir}/${name}` })
  }
  segments.sort((a, b) => a.base - b.base)
  let tail: WalTail | undefined
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!
    const next = segments[i + 1]
    if (next !== undefined && next.base <= fromLsn) continue
    const file = await io.open(segment.path, false)
    const buffer = await readWhole(io, file)
    let at = Math.max(0, fromLsn - segment.base)
    let damaged: string | undefined
    for (;;) {
      const frame = checkFrame(buffer, at, buffer.length)
      if (frame.kind === 'end') break
      if (frame.kind === 'bad') {
        damaged = frame.reason
        break
      }
      forEachRecord(buffer, at, frame.bodyLength, apply)
      at += FRAME_HEADER_BYTES + frame.bodyLength
    }
    const laterSegmentsHaveData = segments.slice(i + 1).length > 0
    if (damaged !== undefined) {
      const middle = laterSegmentsHaveData || hasValidFrameAfter(buffer, at + 1)
      if (middle && !salvage) {
        await io.close(file)
        throw new WalCorruptionError(`${damaged} at LSN ${segment.base + at} in ${segment.path}`)
      }
      // Cut the damage off so no stale frame after it can ever be read as live.
      await io.truncate(file, at)
      await io.datasync(file)
      for (const later of segments.slice(i + 1)) await io.unlink(later.path)
      if (segments.length > i + 1) await io.syncDir(paths.walDir)
      return { file, baseLsn: segment.base, capacity: at, position: at, droppedBytes: buffer.length - at }
    }
    if (next !== undefined && next.base !== segment.base + at) {
      if (!salvage) {
        await io.close(file)
        throw new WalCorruptionError(`segment ${next.path} starts at LSN ${next.base}, expected ${segment.base + at}`)
      }
    }
    if (tail !== undefined) await io.close(tail.file)
    tail = { file, baseLsn: segment.base, capacity: buffer.length, position: at, droppedBytes: 0 }
  }
  return tail
}
