// storage/paths.ts — every file path the durable engine uses, built in one place.
// Zero-padded numbers make directory listings sort in log order.

const pad = (value: number, width: number): string => String(value).padStart(width, '0')

export interface DataPaths {
  readonly root: string
  readonly walDir: string
  readonly streamsDir: string
  /** The registry store's directory (lmdb environment). */
  readonly registry: string
  /** A preallocated segment waiting to become the next one. */
  readonly walSpare: string
  walSegment(baseLsn: number): string
  /** A data segment file of a stream (`data`, segment k) or one of its index files. */
  streamFile(streamId: number, kind: 'data' | 'appends' | 'messages', segment: number): string
}

export const WAL_SEGMENT_SUFFIX = '.wal'

export function dataPaths(root: string): DataPaths {
  const clean = root.endsWith('/') && root.length > 1 ? root.slice(0, -1) : root
  return {
    root: clean,
    walDir: `${clean}/wal`,
    streamsDir: `${clean}/streams`,
    registry: `${clean}/registry`,
    walSpare: `${clean}/wal/spare.tmp`,
    walSegment: (baseLsn) => `${clean}/wal/${pad(baseLsn, 20)}${WAL_SEGMENT_SUFFIX}`,
    streamFile: (streamId, kind, segment) =>
      kind === 'data' ? `${clean}/streams/${pad(streamId, 12)}.${pad(segment, 6)}.data` : `${clean}/streams/${pad(streamId, 12)}.${kind}`,
  }
}

/** The base LSN encoded in a segment file name, or undefined for other files. */
export function segmentBase(name: string): number | undefined {
  const match = /^(\d{20})\.wal$/.exec(name)
  return match === null ? undefined : Number(match[1])
}
