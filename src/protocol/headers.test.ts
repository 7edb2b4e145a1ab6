// Unit tests for protocol/headers.ts: strict parsing and validation of every protocol request header.

import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import { errorCode } from '../../test/expect-error.js'
import {
  assertNoConflict,
  isJsonContentType,
  isSseTextContentType,
  parseContentType,
  parseDecimal,
  parseDurability,
  parseExpiresAt,
  parseProducerHeaders,
  parseStreamClosed,
  parseStreamSeq,
  parseSubOffset,
  parseTtlSeconds,
} from './headers.js'


describe('parseDecimal', () => {
  test.each([
    ['0', 0],
    ['1', 1],
    ['10', 10],
    ['1234567890', 1234567890],
    ['9007199254740991', Number.MAX_SAFE_INTEGER],
  ])('accepts %j', (raw, value) => {
    expect(parseDecimal(raw, 'X')).toBe(value)
  })

  test.each([
    '+1',
    '01',
    '00',
    '1.0',
    '1.',
    '.5',
    '1e3',
    '-1',
    '-0',
    '',
    ' 1',
    '1 ',
    '0x10',
    'abc',
    '１',
    'Infinity',
    '9007199254740992',
    '9007199254740993',
    '99999999999999999999',
  ])('rejects %j with BAD_REQUEST', (raw) => {
    expect(errorCode(() => parseDecimal(raw, 'X'))).toBe('BAD_REQUEST')
  })

  test('the header name appears in the message', () => {
    expect(() => parseDecimal('x', 'Producer-Epoch')).toThrow(/Producer-Epoch/)
  })

  test('round-trips every safe non-negative integer', () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), (n) => {
        expect(parseDecimal(String(n), 'X')).toBe(n)
      }),
    )
  })

  test('rejects any leading zero before a non-zero number', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000 }), fc.integer({ min: 1, max: 3 }), (n, zeros) => {
        expect(errorCode(() => parseDecimal('0'.repeat(zeros) + String(n), 'X'))).toBe('BAD_REQUEST')
      }),
    )
  })
})

describe('parseDecimal agrees with the rule as a pattern', () => {
  test('on strings of digits, signs, dots and spaces', () => {
    const rule = /^(0|[1-9]\d*)$/
    fc.assert(
      fc.property(fc.array(fc.constantFrom('0', '1', '9', '-', '+', '.', ' ', 'e', '٣'), { maxLength: 8 }), (parts) => {
        const raw = parts.join('')
        const accepted = (() => {
          try {
            parseDecimal(raw, 'X')
            return true
          } catch {
            return false
          }
        })()
        expect(accepted).toBe(rule.test(raw) && Number.isSafeInteger(Number(raw)))
      }),
      { numRuns: 3000 },
    )
  })
})

describe('parseContentType', () => {
  test('lower-cases the media type and keeps the parameters as sent', () => {
    expect(parseContentType('Text/Plain; Charset=UTF-8')).toEqual({
      value: 'text/plain; Charset=UTF-8',
      essence: 'text/plain',
    })
  })

  test('no parameters: value equals essence', () => {
    expect(parseContentType('APPLICATION/JSON')).toEqual({ value: 'application/json', essence: 'application/json' })
  })

  test('trims surrounding whitespace and whitespace before the parameters', () => {
    expect(parseContentType('  application/octet-stream  ')).toEqual({
      value: 'application/octet-stream',
      essence: 'application/octet-stream',
    })
    expect(parseContentType('text/html ;charset=utf-8').essence).toBe('text/html')
    expect(parseContentType('text/html ;charset=utf-8').value).toBe('text/html;charset=utf-8')
  })

  test('accepts token characters such as + . -', () => {
    expect(parseContentType('application/vnd.api+json').essence).toBe('application/vnd.api+json')
    expect(parseContentType('application/x-ndjson').essence).toBe('application/x-ndjson')
  })

  test.each(['text', '/x', 'x/', '/', '', '   ', 'a b/c', 'a/b c', 'text/plain/extra', 'te"xt/plain', 'text/pl@in', '; charset=x', 'é/x'])(
    'rejects %j with BAD_REQUEST',
    (raw) => {
      expect(errorCode(() => parseContentType(raw))).toBe('BAD_REQUEST')
    },
  )
})

describe('isJsonContentType', () => {
  test.each([
    ['application/json', true],
    ['Application/JSON', true],
    ['application/json; charset=utf-8', true],
    ['application/jsonl', false],
    ['application/x-json', false],
    ['text/json', false],
    ['text/plain', false],
    ['application/octet-stream', false],
  ])('%j → %s', (raw, expected) => {
    expect(isJsonContentType(parseContentType(raw))).toBe(expected)
  })
})

describe('isSseTextContentType', () => {
  test.each([
    ['text/plain', true],
    ['text/html; charset=utf-8', true],
    ['TEXT/CSV', true],
    ['application/json', true],
    ['application/json; charset=utf-8', true],
    ['application/octet-stream', false],
    ['image/png', false],
    ['textual/x', false],
    ['application/x-ndjson', false],
    ['application/text', false],
  ])('%j → %s', (raw, expected) => {
    expect(isSseTextContentType(parseContentType(raw))).toBe(expected)
  })
})

describe('parseTtlSeconds', () => {
  test('parses whole seconds, trimming whitespace', () => {
    expect(parseTtlSeconds('0')).toBe(0)
    expect(parseTtlSeconds('3600')).toBe(3600)
    expect(parseTtlSeconds('  60 ')).toBe(60)
  })

  test.each(['', ' ', '-1', '+1', '1.5', '1e3', '01', 'one', '9007199254740992'])('rejects %j', (raw) => {
    expect(errorCode(() => parseTtlSeconds(raw))).toBe('BAD_REQUEST')
  })
})

describe('parseExpiresAt', () => {
  const JAN_1 = Date.UTC(2024, 0, 1)

  test.each([
    ['2024-01-01T00:00:00Z', JAN_1],
    ['2024-01-01T00:00:00z', JAN_1],
    ['2024-01-01t00:00:00Z', JAN_1],
    ['2024-01-01T00:00:00+00:00', JAN_1],
    ['2024-01-01T00:00:00-00:00', JAN_1],
    ['2024-01-01T02:30:00+02:30', JAN_1],
    ['2023-12-31T19:00:00-05:00', JAN_1],
    ['2024-01-01T00:00:00.5Z', JAN_1 + 500],
    ['2024-01-01T00:00:00.123Z', JAN_1 + 123],
    ['2024-01-01T00:00:00.250+00:00', JAN_1 + 250],
    ['  2024-01-01T00:00:00Z  ', JAN_1],
    ['2030-06-15T12:34:56Z', Date.UTC(2030, 5, 15, 12, 34, 56)],
    ['2024-02-29T00:00:00Z', Date.UTC(2024, 1, 29)],
    ['2016-12-31T23:59:60Z', Date.UTC(2017, 0, 1)],
  ])('accepts %j', (raw, ms) => {
    expect(parseExpiresAt(raw)).toBe(ms)
  })

  test.each([
    'not-a-timestamp',
    '',
    '2024-01-01',
    '2024-01-01T00:00:00',
    '2024-01-01T00:00Z',
    '2024-01-01T00:00:00+0000',
    '2024-01-01T00:00:00 +00:00',
    '2024-01-01T00:00:00.Z',
    '24-01-01T00:00:00Z',
    '2024-1-1T00:00:00Z',
    '1704067200',
    'Mon, 01 Jan 2024 00:00:00 GMT',
    '2024-13-01T00:00:00Z',
    '2024-01-32T00:00:00Z',
    '2024-01-01T25:00:00Z',
    '2024-01-01T00:60:00Z',
    '2024-02-30T00:00:00Z',
    '2023-02-29T00:00:00Z',
    '2024-04-31T00:00:00Z',
    '2024-01-01T24:00:00Z',
    '2024-01-01T00:00:61Z',
    '2024-01-01T00:00:00+24:00',
    '2024-01-01T00:00:00+01:60',
  ])('rejects %j with BAD_REQUEST', (raw) => {
    expect(errorCode(() => parseExpiresAt(raw))).toBe('BAD_REQUEST')
  })

  test('round-trips Date#toISOString', () => {
    fc.assert(
      fc.property(fc.integer({ min: Date.UTC(1970, 0, 1), max: Date.UTC(9999, 11, 31) }), (ms) => {
        expect(parseExpiresAt(new Date(ms).toISOString())).toBe(ms)
      }),
    )
  })
})

describe('parseStreamClosed', () => {
  test('absent (empty) is false', () => {
    expect(parseStreamClosed('')).toBe(false)
  })

  test.each(['true', 'TRUE', 'True', ' true ', 'tRuE'])('%j is true', (raw) => {
    expect(parseStreamClosed(raw)).toBe(true)
  })

  test.each(['false', 'FALSE', ' False '])('%j is false', (raw) => {
    expect(parseStreamClosed(raw)).toBe(false)
  })

  // PROTOCOL §4.1: any value but "true" is as if the header were absent, never an error.
  test.each(['1', '0', 'yes', 'no', 'on', 'truee', 'trueX', 'tru', 't', ' ', 'true,true', '"true"'])('%j is as if absent', (raw) => {
    expect(parseStreamClosed(raw)).toBe(false)
  })
})

describe('parseDurability', () => {
  test('absent is undefined, known values are lower-cased', () => {
    expect(parseDurability('')).toBeUndefined()
    expect(parseDurability('memory')).toBe('memory')
    expect(parseDurability(' Buffered ')).toBe('buffered')
    expect(parseDurability('FSYNC')).toBe('fsync')
  })

  test.each(['disk', 'sync', 'mem', ' '])('%j is rejected', (raw) => {
    expect(errorCode(() => parseDurability(raw))).toBe('BAD_REQUEST')
  })
})

describe('parseProducerHeaders', () => {
  const MAX = 16

  test('all absent → undefined', () => {
    expect(parseProducerHeaders('', '', '', MAX)).toBeUndefined()
  })

  test('all present → parsed values', () => {
    expect(parseProducerHeaders('writer-1', '0', '0', MAX)).toEqual({ id: 'writer-1', epoch: 0, seq: 0 })
    expect(parseProducerHeaders('w', '7', '42', MAX)).toEqual({ id: 'w', epoch: 7, seq: 42 })
  })

  test('epoch and seq are trimmed before parsing', () => {
    expect(parseProducerHeaders('w', ' 3 ', '\t4', MAX)).toEqual({ id: 'w', epoch: 3, seq: 4 })
  })

  test.each([
    ['w', '', ''],
    ['', '0', ''],
    ['', '', '0'],
    ['w', '0', ''],
    ['w', '', '0'],
    ['', '0', '0'],
  ])('partial set (id=%j epoch=%j seq=%j) is rejected', (id, epoch, seq) => {
    expect(errorCode(() => parseProducerHeaders(id, epoch, seq, MAX))).toBe('BAD_REQUEST')
  })

  test.each(['-1', '+1', '01', '1.0', '1e3', 'x', ' ', '9007199254740992'])('bad epoch %j is rejected', (epoch) => {
    expect(errorCode(() => parseProducerHeaders('w', epoch, '0', MAX))).toBe('BAD_REQUEST')
  })

  test.each(['-1', '+1', '01', '1.0', '1e3', 'x', ' ', '9007199254740992'])('bad seq %j is rejected', (seq) => {
    expect(errorCode(() => parseProducerHeaders('w', '0', seq, MAX))).toBe('BAD_REQUEST')
  })

  test('id length is limited in UTF-8 bytes', () => {
    expect(parseProducerHeaders('a'.repeat(MAX), '0', '0', MAX)?.id).toBe('a'.repeat(MAX))
    expect(errorCode(() => parseProducerHeaders('a'.repeat(MAX + 1), '0', '0', MAX))).toBe('BAD_REQUEST')
    // 8 × 'é' is 16 bytes (fits); 9 × 'é' is 18 bytes though only 9 UTF-16 units.
    expect(parseProducerHeaders('é'.repeat(8), '0', '0', MAX)?.id).toBe('é'.repeat(8))
    expect(errorCode(() => parseProducerHeaders('é'.repeat(9), '0', '0', MAX))).toBe('BAD_REQUEST')
  })
})

describe('parseStreamSeq', () => {
  test('absent → undefined', () => {
    expect(parseStreamSeq('', 8)).toBeUndefined()
  })

  test('returns the value verbatim (opaque, untrimmed)', () => {
    expect(parseStreamSeq('abc', 8)).toBe('abc')
    expect(parseStreamSeq(' 0001 ', 8)).toBe(' 0001 ')
  })

  test('length is limited in UTF-8 bytes', () => {
    expect(parseStreamSeq('x'.repeat(8), 8)).toBe('x'.repeat(8))
    expect(errorCode(() => parseStreamSeq('x'.repeat(9), 8))).toBe('BAD_REQUEST')
    expect(parseStreamSeq('€€', 8)).toBe('€€') // 6 bytes
    expect(errorCode(() => parseStreamSeq('€€€', 8))).toBe('BAD_REQUEST') // 9 bytes, 3 units
  })
})

describe('parseSubOffset', () => {
  test('parses trimmed non-negative integers', () => {
    expect(parseSubOffset('0')).toBe(0)
    expect(parseSubOffset(' 12 ')).toBe(12)
  })

  test.each(['', '-1', '1.5', '01', 'a'])('%j is rejected', (raw) => {
    expect(errorCode(() => parseSubOffset(raw))).toBe('BAD_REQUEST')
  })
})

describe('assertNoConflict', () => {
  test('throws BAD_REQUEST with the message when the condition holds', () => {
    expect(errorCode(() => assertNoConflict(true, 'conflict!'))).toBe('BAD_REQUEST')
    expect(() => assertNoConflict(true, 'conflict!')).toThrow('conflict!')
  })

  test('does nothing otherwise', () => {
    expect(() => assertNoConflict(false, 'x')).not.toThrow()
  })
})
