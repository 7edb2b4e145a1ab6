// storage/segments/segments.ts: spans and split parts cover a range exactly, cut at every boundary.

import fc from 'fast-check'
import { expect, test } from 'vitest'
import { segmentCount, segmentSpans, splitParts } from './segments.js'

test('spans of a range cover it in order, one per segment, inside each segment', () => {
  expect(segmentSpans(5, 25, 10)).toEqual([
    { segment: 0, position: 5, offset: 0, length: 5 },
    { segment: 1, position: 0, offset: 5, length: 10 },
    { segment: 2, position: 0, offset: 15, length: 5 },
  ])
  expect(segmentSpans(10, 10, 10)).toEqual([])
  expect(segmentCount(0, 10)).toBe(1)
  expect(segmentCount(10, 10)).toBe(1)
  expect(segmentCount(11, 10)).toBe(2)
})

test('property: split parts hold the same bytes, each piece inside one segment', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 8 }), fc.nat(100), fc.integer({ min: 1, max: 17 }), (parts, start, size) => {
      const pieces = splitParts(parts, start, size)
      const joined = Buffer.concat(parts)
      let at = start
      for (const piece of pieces) {
        const bytes = Buffer.concat(piece.parts)
        expect(piece.segment * size + piece.position).toBe(at)
        expect(piece.position + bytes.length).toBeLessThanOrEqual(size)
        expect(bytes.equals(joined.subarray(at - start, at - start + bytes.length))).toBe(true)
        at += bytes.length
      }
      expect(at - start).toBe(joined.length)
    }),
  )
})
