// Unit tests for protocol/path.ts: stream path decoding, validation and the reserved __ds namespace.

import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import { errorCode } from '../../test/expect-error.js'
import { decodeStreamPath, isReservedPath, validateStreamPath } from './path.js'


const MAX = 64

describe('decodeStreamPath: accepted', () => {
  test.each([
    ['a', 'a'],
    ['my-stream', 'my-stream'],
    ['a/b/c', 'a/b/c'],
    ['users/42/events', 'users/42/events'],
    ['hello%20world', 'hello world'],
    ['caf%C3%A9', 'café'],
    ['a%2Fb', 'a/b'],
    ['...', '...'],
    ['..a', '..a'],
    ['a..', 'a..'],
    ['.hidden', '.hidden'],
    ['a/.b/c.', 'a/.b/c.'],
    ['%25', '%'],
    ['__ds', '__ds'],
  ])('%j → %j', (raw, decoded) => {
    expect(decodeStreamPath(raw, MAX)).toBe(decoded)
  })
})

describe('decodeStreamPath: rejected', () => {
  test.each([
    ['..', '..'],
    ['%2e%2e', '%2e%2e'],
    ['%2E%2E', '%2E%2E'],
    ['.%2e', '.%2e'],
    ['leading ..', '../a'],
    ['middle ..', 'a/../b'],
    ['encoded middle ..', 'a/%2e%2e/b'],
    ['trailing ..', 'a/..'],
    ['.', '.'],
    ['%2e', '%2e'],
    ['middle .', 'a/./b'],
    ['trailing .', 'a/.'],
    ['empty', ''],
    ['leading slash', '/a'],
    ['trailing slash', 'a/'],
    ['double slash', 'a//b'],
    ['encoded double slash', 'a%2F%2Fb'],
    ['only slash', '/'],
    ['NUL', 'a%00b'],
    ['LF', 'a%0Ab'],
    ['CR', 'a%0Db'],
    ['unit separator', 'a%1F'],
    ['DEL', 'a%7F'],
    ['C1 next-line U+0085', 'a%C2%85b'],
    ['C1 U+009F', 'a%C2%9F'],
    ['raw tab', 'a\tb'],
    ['raw NUL', 'a\u0000b'],
    ['backslash', 'a\\b'],
    ['encoded backslash', 'a%5Cb'],
    ['encoded backslash traversal', '..%5Cetc'],
  ])('%s (%j) is INVALID_PATH', (_name, raw) => {
    expect(errorCode(() => decodeStreamPath(raw, MAX))).toBe('INVALID_PATH')
  })

  test.each(['%', '%2', '%zz', 'a%G0', '%C3', '%E2%82', '%ED%A0%80', '%FF'])('malformed percent-encoding %j is INVALID_PATH', (raw) => {
    expect(errorCode(() => decodeStreamPath(raw, MAX))).toBe('INVALID_PATH')
  })
})

describe('decodeStreamPath: length limit', () => {
  test('limit is inclusive', () => {
    expect(decodeStreamPath('a'.repeat(MAX), MAX)).toBe('a'.repeat(MAX))
    expect(errorCode(() => decodeStreamPath('a'.repeat(MAX + 1), MAX))).toBe('INVALID_PATH')
  })

  test('limit applies to the decoded path, not the raw encoding', () => {
    // 64 × '%61' is 192 raw characters but decodes to 64 bytes.
    expect(decodeStreamPath('%61'.repeat(MAX), MAX)).toBe('a'.repeat(MAX))
  })

  test('limit is counted in UTF-8 bytes', () => {
    // 'é' is 2 bytes: 32 fit in 64, 33 (only 33 UTF-16 units) do not.
    expect(decodeStreamPath('%C3%A9'.repeat(32), MAX)).toBe('é'.repeat(32))
    expect(errorCode(() => decodeStreamPath('%C3%A9'.repeat(33), MAX))).toBe('INVALID_PATH')
    expect(errorCode(() => decodeStreamPath('é'.repeat(33), MAX))).toBe('INVALID_PATH')
  })
})

describe('decodeStreamPath: properties', () => {
  const segment = fc
    .string({ unit: fc.constantFrom('a', 'Z', '0', '-', '_', '.', '~', ' ', 'é', '😀', '%', '?', '#'), minLength: 1, maxLength: 8 })
    .filter((s) => s !== '.' && s !== '..')

  test('encodeURIComponent of each valid segment round-trips', () => {
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 5 }), (segments) => {
        const path = segments.join('/')
        fc.pre(Buffer.byteLength(path) <= 256)
        expect(decodeStreamPath(segments.map(encodeURIComponent).join('/'), 256)).toBe(path)
        expect(decodeStreamPath(encodeURIComponent(path), 256)).toBe(path)
      }),
    )
  })

  test('a path containing a . or .. segment anywhere is rejected however it is encoded', () => {
    fc.assert(
      fc.property(
        fc.array(segment, { maxLength: 3 }),
        fc.constantFrom('.', '..', '%2e', '%2E', '%2e%2e', '.%2E', '%2E.'),
        fc.array(segment, { maxLength: 3 }),
        (before, bad, after) => {
          const raw = [...before.map(encodeURIComponent), bad, ...after.map(encodeURIComponent)].join('/')
          expect(errorCode(() => decodeStreamPath(raw, 1024))).toBe('INVALID_PATH')
        },
      ),
    )
  })
})

describe('validateStreamPath', () => {
  test('validates an already-decoded path without decoding it again', () => {
    expect(() => validateStreamPath('a%2e%2e', MAX)).not.toThrow()
    expect(errorCode(() => validateStreamPath('a/../b', MAX))).toBe('INVALID_PATH')
  })
})

describe('isReservedPath', () => {
  test.each([
    ['__ds', true],
    ['__ds/', true],
    ['__ds/stats', true],
    ['__ds/a/b', true],
    ['__dsx', false],
    ['__ds-x', false],
    ['_ds/x', false],
    ['a/__ds', false],
    ['a/__ds/x', false],
    ['x__ds/', false],
    ['ds', false],
  ])('%j → %s', (path, expected) => {
    expect(isReservedPath(path)).toBe(expected)
  })

  test('an encoded slash after __ds decodes into the reserved namespace', () => {
    expect(isReservedPath(decodeStreamPath('__ds%2Fstats', MAX))).toBe(true)
  })
})

describe('validateStreamPath: the one-pass check agrees with the rules spelled out', () => {
  /** The rules as separate checks, in the order their errors are reported. */
  function expected(path: string, bytesMax: number): string | undefined {
    if (path.length === 0) return 'empty'
    if (Buffer.byteLength(path) > bytesMax) return 'longer'
    if (/[\u0000-\u001f\u007f-\u009f]/.test(path)) return 'control'
    if (path.includes('\\')) return 'backslash'
    if (path.split('/').some((segment) => segment === '' || segment === '.' || segment === '..')) return 'segment'
    return undefined
  }
  function actual(path: string, bytesMax: number): string | undefined {
    try {
      validateStreamPath(path, bytesMax)
      return undefined
    } catch (error) {
      const message = (error as Error).message
      const words: Array<[string, string]> = [['is empty', 'empty'], ['longer than', 'longer'], ['control', 'control'], ['backslash', 'backslash'], ['segment', 'segment']]
      return words.find(([phrase]) => message.includes(phrase))?.[1] ?? message
    }
  }
  const pieces = ['a', 'é', '😀', '/', '.', '..', '\\', '\u0000', '\u001f', '\u007f', '\u009f', '\u00a0', '%', ' ']

  test('on paths built from the characters that matter', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...pieces), { maxLength: 12 }), fc.integer({ min: 1, max: 24 }), (parts, bytesMax) => {
        const path = parts.join('')
        expect(actual(path, bytesMax)).toBe(expected(path, bytesMax))
      }),
      { numRuns: 5000 },
    )
  })
})
