// storage/segments/segments.ts — how a stream's bytes split into segment files: segment k holds the
// stream-log positions [k·segmentBytes, (k+1)·segmentBytes), at file position
// `position − k·segmentBytes`. Fixed boundaries make the file of any position arithmetic
// (no per-segment table in memory or in the registry). Pure functions; file-log.ts does the I/O.

/** 64 MiB: a 1 MiB catch-up read crosses into a second file once in 64 reads, a million
 * appends of 64 bytes fill one file, and a stream's files stay few (10 GiB = 160 files)
 * while each stays a size that copies, deletes and future retention handle in one step. */
export const SEGMENT_BYTES_DEFAULT = 64 * 1024 * 1024

/** One contiguous run of a read or write inside one segment. */
export interface SegmentSpan {
  readonly segment: number
  /** Position inside the segment file. */
  readonly position: number
  /** Where the run starts in the caller's range (0 = the range's start). */
  readonly offset: number
  readonly length: number
}

/** Segments holding `length` bytes (the files a stream of that length has). */
export function segmentCount(length: number, segmentBytes: number): number {
  return length === 0 ? 1 : Math.ceil(length / segmentBytes)
}

/** The runs of the log range [from, to), one per segment it touches. */
export function segmentSpans(from: number, to: number, segmentBytes: number): SegmentSpan[] {
  const spans: SegmentSpan[] = []
  for (let at = from; at < to; ) {
    const segment = Math.floor(at / segmentBytes)
    const end = Math.min(to, (segment + 1) * segmentBytes)
    spans.push({ segment, position: at - segment * segmentBytes, offset: at - from, length: end - at })
    at = end
  }
  return spans
}

/** `parts` (written contiguously from log position `start`) cut at segment boundaries. */
export function splitParts(parts: readonly Uint8Array[], start: number, segmentBytes: number): Array<{ segment: number; position: number; parts: Uint8Array[] }> {
  const pieces: Array<{ segment: number; position: number; parts: Uint8Array[] }> = []
  let at = start
  for (let part of parts) {
    while (part.length > 0) {
      const segment = Math.floor(at / segmentBytes)
      const room = (segment + 1) * segmentBytes - at
      const head = part.length <= room ? part : part.subarray(0, room)
      const last = pieces[pieces.length - 1]
      if (last !== undefined && last.segment === segment) last.parts.push(head)
      else pieces.push({ segment, position: at - segment * segmentBytes, parts: [head] })
      at += head.length
      part = part.subarray(head.length)
    }
  }
  return pieces
}
