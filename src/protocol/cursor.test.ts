// Unit tests for protocol/cursor.ts: interval computation and nextCursor's echo/jitter rules.

import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import { currentInterval, nextCursor } from './cursor.js'

const CURSOR_EPOCH_MS = Date.UTC(2024, 9, 9)
/** 2025-01-01T00:00:00Z is 84 days after 2024-10-09: 84 * 86400 / 20 = 362880 intervals. */
const NOW_MS = Date.UTC(2025, 0, 1)
const NOW_INTERVAL = 362880

/** A `random` that fails the test if nextCursor consults it. */
const noRandom = (): number => {
  throw new Error('random() must not be called')
}

describe('currentInterval', () => {
  test('counts 20 s intervals since 2024-10-09T00:00:00Z', () => {
    expect(currentInterval(CURSOR_EPOCH_MS)).toBe(0)
    expect(currentInterval(CURSOR_EPOCH_MS + 19_999)).toBe(0)
    expect(currentInterval(CURSOR_EPOCH_MS + 20_000)).toBe(1)
    expect(currentInterval(CURSOR_EPOCH_MS + 60_000)).toBe(3)
    expect(currentInterval(NOW_MS)).toBe(NOW_INTERVAL)
  })
})

describe('nextCursor', () => {
  test('no client cursor: current interval, no jitter', () => {
    expect(nextCursor(NOW_MS, undefined, noRandom)).toBe(String(NOW_INTERVAL))
    expect(nextCursor(NOW_MS + 20_000, undefined, noRandom)).toBe(String(NOW_INTERVAL + 1))
  })

  test('client cursor behind the current interval: current interval, no jitter', () => {
    expect(nextCursor(NOW_MS, String(NOW_INTERVAL - 1), noRandom)).toBe(String(NOW_INTERVAL))
    expect(nextCursor(NOW_MS, '0', noRandom)).toBe(String(NOW_INTERVAL))
    expect(nextCursor(NOW_MS, '1', noRandom)).toBe(String(NOW_INTERVAL))
  })

  test('client cursor equal to the current interval: strictly greater', () => {
    const result = Number(nextCursor(NOW_MS, String(NOW_INTERVAL), () => 0.5))
    expect(result).toBeGreaterThan(NOW_INTERVAL)
  })

  test('client cursor ahead of the current interval: strictly greater than the client cursor', () => {
    const ahead = NOW_INTERVAL + 1000
    const result = Number(nextCursor(NOW_MS, String(ahead), () => 0.5))
    expect(result).toBeGreaterThan(ahead)
  })

  test('random() = 0 gives the minimum jitter of one interval', () => {
    expect(nextCursor(NOW_MS, String(NOW_INTERVAL), () => 0)).toBe(String(NOW_INTERVAL + 1))
    expect(nextCursor(NOW_MS, '500000', () => 0)).toBe('500001')
  })

  test('random() just below 1 gives the maximum jitter of 3600 s = 180 intervals', () => {
    expect(nextCursor(NOW_MS, String(NOW_INTERVAL), () => 0.999999)).toBe(String(NOW_INTERVAL + 180))
    expect(nextCursor(NOW_MS, '500000', () => 0.999999)).toBe('500180')
  })

  test('jitter is 1 + floor(random() * 3600) seconds, rounded up to whole intervals', () => {
    // 0.5 → 1801 s → 90.05 intervals → 91; 19/3600 → 20 s → exactly 1 interval; 20/3600 → 21 s → 2.
    expect(nextCursor(NOW_MS, '500000', () => 0.5)).toBe('500091')
    expect(nextCursor(NOW_MS, '500000', () => 19.5 / 3600)).toBe('500001')
    expect(nextCursor(NOW_MS, '500000', () => 20.5 / 3600)).toBe('500002')
  })

  test('jitter is always 1..180 intervals and grows with random()', () => {
    fc.assert(
      fc.property(
        fc.nat(1_000_000),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (ahead, r1, r2) => {
          const echoed = NOW_INTERVAL + ahead
          const a = Number(nextCursor(NOW_MS, String(echoed), () => r1)) - echoed
          const b = Number(nextCursor(NOW_MS, String(echoed), () => r2)) - echoed
          expect(a).toBeGreaterThanOrEqual(1)
          expect(a).toBeLessThanOrEqual(180)
          expect(Number.isInteger(a)).toBe(true)
          if (r1 <= r2) expect(a).toBeLessThanOrEqual(b)
        },
      ),
    )
  })

  test('result is always a plain decimal string', () => {
    fc.assert(
      fc.property(fc.option(fc.string()), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (cursor, r) => {
        expect(nextCursor(NOW_MS, cursor ?? undefined, () => r)).toMatch(/^(0|[1-9]\d*)$/)
      }),
    )
  })

  test.each([
    ['empty', ''],
    ['letters', 'abc'],
    ['negative', '-5'],
    ['fraction', `${NOW_INTERVAL}.5`],
    ['exponent', '1e9'],
    ['leading space', ` ${NOW_INTERVAL + 10}`],
    ['trailing space', `${NOW_INTERVAL + 10} `],
    ['plus sign', `+${NOW_INTERVAL + 10}`],
    ['hex', '0xFFFFFFFF'],
    ['16 digits', '9999999999999999'],
    ['Infinity', 'Infinity'],
  ])('garbage client cursor (%s) is ignored', (_name, cursor) => {
    expect(nextCursor(NOW_MS, cursor, noRandom)).toBe(String(NOW_INTERVAL))
  })

  test('a 15-digit cursor far ahead is honoured', () => {
    expect(nextCursor(NOW_MS, '999999999999999', () => 0)).toBe('1000000000000000')
  })
})
