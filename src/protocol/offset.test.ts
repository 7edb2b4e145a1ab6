// Unit tests for protocol/offset.ts: offset token formatting, token parsing and the `offset` query parameter.

import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import { errorCode } from '../../test/expect-error.js'
import { formatOffset, parseOffsetParam, parseOffsetToken } from './offset.js'


const ZERO_EPOCH = '0000000000000000'

describe('formatOffset', () => {
  test('zero-pads both fields to 16 digits with a 0 epoch', () => {
    expect(formatOffset(0)).toBe('0000000000000000_0000000000000000')
    expect(formatOffset(1)).toBe('0000000000000000_0000000000000001')
    expect(formatOffset(123456)).toBe('0000000000000000_0000000000123456')
  })

  test('fits the largest safe integer exactly', () => {
    expect(formatOffset(Number.MAX_SAFE_INTEGER)).toBe('0000000000000000_9007199254740991')
  })

  test('always produces 33 characters', () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), (position) => {
        const token = formatOffset(position)
        expect(token).toHaveLength(33)
        expect(token.startsWith(`${ZERO_EPOCH}_`)).toBe(true)
      }),
    )
  })

  test('lexicographic order of formatted offsets equals numeric order of positions', () => {
    const position = fc.oneof(fc.nat(10_000), fc.maxSafeNat())
    fc.assert(
      fc.property(position, position, (a, b) => {
        const x = formatOffset(a)
        const y = formatOffset(b)
        const lexical = x < y ? -1 : x > y ? 1 : 0
        expect(lexical).toBe(Math.sign(a - b))
      }),
    )
  })

  test('sorting tokens as strings sorts them by position', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.nat(1000), fc.maxSafeNat())), (positions) => {
        const byString = positions.map(formatOffset).sort()
        const byNumber = [...positions].sort((a, b) => a - b).map(formatOffset)
        expect(byString).toEqual(byNumber)
      }),
    )
  })
})

describe('parseOffsetToken', () => {
  test('round-trips formatOffset', () => {
    fc.assert(
      fc.property(fc.oneof(fc.nat(1000), fc.maxSafeNat()), (position) => {
        expect(parseOffsetToken(formatOffset(position))).toBe(position)
      }),
    )
  })

  test('parses known tokens', () => {
    expect(parseOffsetToken('0000000000000000_0000000000000000')).toBe(0)
    expect(parseOffsetToken('0000000000000000_0000000000000042')).toBe(42)
    expect(parseOffsetToken('0000000000000000_9007199254740991')).toBe(Number.MAX_SAFE_INTEGER)
  })

  test.each([
    ['empty', ''],
    ['comma separator', '0,1'],
    ['space separator', '0 1'],
    ['path traversal', '../x'],
    ['short fields', '1_2'],
    ['sentinel -1', '-1'],
    ['sentinel now', 'now'],
    ['15-digit position', '0000000000000000_000000000000001'],
    ['17-digit position', '0000000000000000_00000000000000001'],
    ['15-digit epoch', '000000000000000_0000000000000001'],
    ['comma instead of underscore', '0000000000000000,0000000000000001'],
    ['dash instead of underscore', '0000000000000000-0000000000000001'],
    ['letters', '0000000000000000_000000000000000a'],
    ['hex prefix', '0000000000000000_0x00000000000001'],
    ['negative position', '0000000000000000_-000000000000001'],
    ['leading whitespace', ' 0000000000000000_0000000000000001'],
    ['trailing whitespace', '0000000000000000_0000000000000001 '],
    ['trailing newline', '0000000000000000_0000000000000001\n'],
    ['full-width digits', '0000000000000000_000000000000000１'],
    ['trailing junk', '0000000000000000_0000000000000001_0'],
  ])('rejects %s', (_name, token) => {
    expect(parseOffsetToken(token)).toBeNull()
  })

  test('rejects a non-zero epoch field', () => {
    expect(parseOffsetToken('0000000000000001_0000000000000000')).toBeNull()
    expect(parseOffsetToken('9999999999999999_0000000000000005')).toBeNull()
    expect(parseOffsetToken('1000000000000000_0000000000000005')).toBeNull()
  })

  test('rejects positions above 2^53-1', () => {
    expect(parseOffsetToken('0000000000000000_9007199254740992')).toBeNull()
    expect(parseOffsetToken('0000000000000000_9999999999999999')).toBeNull()
  })
})

describe('parseOffsetParam', () => {
  test('absent parameter means start of stream', () => {
    expect(parseOffsetParam(undefined)).toEqual({ kind: 'start' })
  })

  test('-1 means start of stream', () => {
    expect(parseOffsetParam('-1')).toEqual({ kind: 'start' })
  })

  test('now means the tail', () => {
    expect(parseOffsetParam('now')).toEqual({ kind: 'now' })
  })

  test('a concrete token gives its position', () => {
    expect(parseOffsetParam('0000000000000000_0000000000000000')).toEqual({ kind: 'at', position: 0 })
    expect(parseOffsetParam(formatOffset(987654321))).toEqual({ kind: 'at', position: 987654321 })
  })

  test('empty string is INVALID_OFFSET (not the same as absent)', () => {
    expect(errorCode(() => parseOffsetParam(''))).toBe('INVALID_OFFSET')
  })

  test.each([
    '0,1',
    '0 1',
    '../x',
    '1_2',
    '0',
    '-2',
    '-1 ',
    ' now',
    'NOW',
    'Now',
    'start',
    '0000000000000001_0000000000000000',
    '0000000000000000_9007199254740992',
    '0000000000000000_000000000000001',
  ])('malformed %j is INVALID_OFFSET', (raw) => {
    expect(errorCode(() => parseOffsetParam(raw))).toBe('INVALID_OFFSET')
  })

  test('every formatted offset is accepted as a position', () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), (position) => {
        expect(parseOffsetParam(formatOffset(position))).toEqual({ kind: 'at', position })
      }),
    )
  })
})
