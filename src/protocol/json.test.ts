// Unit tests for protocol/json.ts: JSON-mode append framing (frameJsonAppend) and read-side wrapping (jsonArrayParts).

import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import { errorCode } from '../../test/expect-error.js'
import { type JsonFrames, frameJsonAppend, jsonArrayParts } from './json.js'


function frame(text: string, allowEmpty = false): JsonFrames {
  return frameJsonAppend(Buffer.from(text, 'utf8'), allowEmpty)
}

/** Splits framed bytes into messages using messageEnds, checking each ends with the ',' separator. */
function messages(frames: JsonFrames): Buffer[] {
  const out: Buffer[] = []
  let start = 0
  for (const end of frames.messageEnds) {
    expect(frames.bytes[end - 1]).toBe(0x2c)
    out.push(frames.bytes.subarray(start, end - 1))
    start = end
  }
  expect(start).toBe(frames.bytes.length)
  return out
}

function messageTexts(text: string, allowEmpty = false): string[] {
  return messages(frame(text, allowEmpty)).map((m) => m.toString('utf8'))
}

function concat(parts: Uint8Array[]): string {
  return Buffer.concat(parts).toString('utf8')
}

describe('frameJsonAppend: non-array values', () => {
  test('a single object is one message followed by ","', () => {
    const frames = frame('{"a":1}')
    expect(frames.bytes.toString()).toBe('{"a":1},')
    expect(frames.messageEnds).toEqual([8])
  })

  test.each(['42', '-1.5e3', 'null', 'true', 'false', '"hello"', '"[1,2]"', '"a,b"', '{"x":[1,2,3]}', '{}'])(
    'scalar or object %s is one message, bytes unchanged',
    (text) => {
      expect(messageTexts(text)).toEqual([text])
    },
  )

  test('whitespace around a top-level value is trimmed', () => {
    expect(messageTexts(' \t\r\n {"a" : 1}\n\n ')).toEqual(['{"a" : 1}'])
    expect(messageTexts('  7  ')).toEqual(['7'])
  })
})

describe('frameJsonAppend: arrays', () => {
  test('an array is flattened one level', () => {
    const frames = frame('[1,2,3]')
    expect(frames.bytes.toString()).toBe('1,2,3,')
    expect(frames.messageEnds).toEqual([2, 4, 6])
  })

  test('messageEnds are exclusive ends after each separator', () => {
    const frames = frame('[1, 22, 333, {"k":"v"}]')
    expect(frames.bytes.toString()).toBe('1,22,333,{"k":"v"},')
    expect(frames.messageEnds).toEqual([2, 5, 9, 19])
  })

  test('[[1,2],[3,4]] is two messages', () => {
    expect(messageTexts('[[1,2],[3,4]]')).toEqual(['[1,2]', '[3,4]'])
  })

  test('[[[1,2,3]]] is one message [[1,2,3]]', () => {
    expect(messageTexts('[[[1,2,3]]]')).toEqual(['[[1,2,3]]'])
  })

  test('objects containing commas are not split', () => {
    expect(messageTexts('[{"a":1,"b":[2,3]},{"c":{"d":4,"e":5}}]')).toEqual(['{"a":1,"b":[2,3]}', '{"c":{"d":4,"e":5}}'])
  })

  test('strings with commas, brackets, braces, escaped quotes and backslashes are not split', () => {
    const elements = [
      '"a,b"',
      '"[x,y]"',
      '"]"',
      '"{,}"',
      '"}"',
      String.raw`"q\"u,o"`,
      String.raw`"ends with backslash \\"`,
      String.raw`"\\"`,
      String.raw`"\\\","`,
      String.raw`"\u0022,\u005d"`,
      '{"k,]":"v,["}',
    ]
    const text = `[${elements.join(',')}]`
    expect(messageTexts(text)).toEqual(elements)
    expect(messages(frame(text)).map((m) => JSON.parse(m.toString()) as unknown)).toEqual(JSON.parse(text))
  })

  test('whitespace around elements is trimmed, whitespace inside is kept', () => {
    expect(messageTexts('[ 1 ,\n\t2\r\n, { "a" : [ 1 , 2 ] } ]')).toEqual(['1', '2', '{ "a" : [ 1 , 2 ] }'])
    expect(messageTexts('\n  [\n  "x"\n]\n')).toEqual(['"x"'])
  })

  test('the raw bytes of each element are preserved exactly', () => {
    const text = '[1.50, 1E+2, -0, "é😀", "\\u00e9", {"b":1,"a":2}, 0.1e-7]'
    expect(messageTexts(text)).toEqual(['1.50', '1E+2', '-0', '"é😀"', '"\\u00e9"', '{"b":1,"a":2}', '0.1e-7'])
    const bytes = frame(text).bytes
    expect(bytes.equals(Buffer.from('1.50,1E+2,-0,"é😀","\\u00e9",{"b":1,"a":2},0.1e-7,', 'utf8'))).toBe(true)
  })

  test('empty array is rejected for appends (allowEmpty=false)', () => {
    for (const text of ['[]', '[ ]', ' [\n] ']) {
      expect(errorCode(() => frame(text, false))).toBe('BAD_REQUEST')
    }
  })

  test('empty array gives zero messages when allowEmpty=true', () => {
    for (const text of ['[]', '[ ]', ' [\n] ']) {
      const frames = frame(text, true)
      expect(frames.bytes.length).toBe(0)
      expect(frames.messageEnds).toEqual([])
    }
  })

  test('an array containing one empty array is one message', () => {
    expect(messageTexts('[[]]')).toEqual(['[]'])
    expect(messageTexts('[[], {}]')).toEqual(['[]', '{}'])
  })
})

describe('frameJsonAppend: rejection', () => {
  test.each(['', '   ', '[1,', '[1,]', '[,1]', '{a:1}', "'x'", '1 2', '[1] [2]', 'NaN', 'undefined', '{"a":1,}', '"unterminated', '[1]]'])(
    'invalid JSON %j is BAD_REQUEST',
    (text) => {
      expect(errorCode(() => frame(text, true))).toBe('BAD_REQUEST')
    },
  )

  test('invalid UTF-8 is rejected even though a lenient decode would be valid JSON', () => {
    for (const bytes of [
      [0x22, 0xff, 0x22], // "\xff"
      [0x5b, 0x22, 0xc3, 0x22, 0x5d], // ["<truncated 2-byte sequence>"]
      [0x22, 0xed, 0xa0, 0x80, 0x22], // UTF-8-encoded surrogate
      [0x22, 0xc0, 0xaf, 0x22], // overlong '/'
    ]) {
      expect(() => frameJsonAppend(Uint8Array.from(bytes), true)).toThrow(/UTF-8/)
      expect(errorCode(() => frameJsonAppend(Uint8Array.from(bytes), true))).toBe('BAD_REQUEST')
    }
  })

  test('a byte order mark is not JSON', () => {
    expect(errorCode(() => frameJsonAppend(Buffer.from('\ufeff[1]', 'utf8'), true))).toBe('BAD_REQUEST')
  })
})

describe('frameJsonAppend: input views', () => {
  test('a body that is a view into a larger buffer is read within its bounds', () => {
    const backing = Buffer.from('XXXX[1,"two",3]YYYY]', 'utf8')
    const body = new Uint8Array(backing.buffer, backing.byteOffset + 4, 11)
    const frames = frameJsonAppend(body, false)
    expect(frames.bytes.toString()).toBe('1,"two",3,')
    expect(frames.messageEnds).toEqual([2, 8, 10])
  })

  test('a compact array is framed in the body\'s own memory (the body is handed over)', () => {
    const body = Buffer.from('[1,"a\\"b\\\\",{"c":[2]}]')
    const frames = frameJsonAppend(body, false)
    expect(frames.bytes.toString()).toBe('1,"a\\"b\\\\",{"c":[2]},')
    expect(frames.bytes.buffer).toBe(body.buffer)
    expect(frames.messageEnds).toEqual([2, 11, 21])
  })

  test('an array with spaces between its elements is copied into its stored form', () => {
    const body = Buffer.from('[1, 2 ,3 ]')
    const frames = frameJsonAppend(body, false)
    body.fill(0x20)
    expect(frames.bytes.toString()).toBe('1,2,3,')
  })
})

describe('jsonArrayParts', () => {
  test('no stored bytes → []', () => {
    expect(concat(jsonArrayParts([]))).toBe('[]')
    expect(concat(jsonArrayParts([new Uint8Array(0)]))).toBe('[]')
    expect(concat(jsonArrayParts([new Uint8Array(0), new Uint8Array(0)]))).toBe('[]')
  })

  test('wraps stored bytes with [ ] and drops only the last separator', () => {
    expect(concat(jsonArrayParts([Buffer.from('1,2,3,')]))).toBe('[1,2,3]')
    expect(concat(jsonArrayParts([Buffer.from('{"a":1},')]))).toBe('[{"a":1}]')
  })

  test('multiple parts and empty parts anywhere', () => {
    const parts = [Buffer.from('1,'), new Uint8Array(0), Buffer.from('"x,y",[2],'), Buffer.from('{"z":3},'), new Uint8Array(0)]
    const body = concat(jsonArrayParts(parts))
    expect(body).toBe('[1,"x,y",[2],{"z":3}]')
    expect(JSON.parse(body)).toEqual([1, 'x,y', [2], { z: 3 }])
  })

  test('does not modify the stored parts', () => {
    const stored = Buffer.from('1,2,')
    jsonArrayParts([stored])
    expect(stored.toString()).toBe('1,2,')
  })

  test('framed bytes of an append read back as the original values', () => {
    const text = '[{"id":1,"tags":["a","b"]}, "s,t", [1,[2]], null, 1.50]'
    const body = concat(jsonArrayParts([frame(text).bytes]))
    expect(JSON.parse(body)).toEqual(JSON.parse(text))
    expect(body).toBe('[{"id":1,"tags":["a","b"]},"s,t",[1,[2]],null,1.50]')
  })

  test('any message-aligned range of stored appends reads as valid JSON', () => {
    const appends = ['{"a":1}', '[2,3]', '"four"', '[[5],[6]]']
    const stored = Buffer.concat(appends.map((a) => frame(a).bytes))
    const boundaries = [0]
    let base = 0
    for (const a of appends) {
      const f = frame(a)
      boundaries.push(...f.messageEnds.map((e) => base + e))
      base += f.bytes.length
    }
    const all = [{ a: 1 }, 2, 3, 'four', [5], [6]]
    expect(boundaries).toHaveLength(all.length + 1)
    for (let i = 0; i < boundaries.length; i++) {
      for (let j = i; j < boundaries.length; j++) {
        const slice = stored.subarray(boundaries[i]!, boundaries[j]!)
        expect(JSON.parse(concat(jsonArrayParts([slice])))).toEqual(all.slice(i, j))
      }
    }
  })
})

describe('frameJsonAppend + jsonArrayParts properties', () => {
  const normalise = (value: unknown): unknown => JSON.parse(JSON.stringify(value))

  test('framing JSON.stringify(array) and wrapping gives back the array', () => {
    fc.assert(
      fc.property(fc.array(fc.jsonValue()), fc.boolean(), (array, pretty) => {
        const text = pretty ? JSON.stringify(array, null, 2) : JSON.stringify(array)
        const frames = frameJsonAppend(Buffer.from(text, 'utf8'), true)
        expect(frames.messageEnds).toHaveLength(array.length)
        const body = concat(jsonArrayParts([frames.bytes]))
        expect(JSON.parse(body)).toEqual(normalise(array))
      }),
    )
  })

  test('each framed message is exactly one element', () => {
    fc.assert(
      fc.property(fc.array(fc.jsonValue(), { minLength: 1 }), (array) => {
        const frames = frame(JSON.stringify(array))
        const parsed = messages(frames).map((m) => JSON.parse(m.toString('utf8')) as unknown)
        expect(parsed).toEqual(normalise(array))
      }),
    )
  })

  test('a non-array value is stored as exactly its trimmed bytes', () => {
    const nonArray = fc.jsonValue().filter((v) => !Array.isArray(v))
    fc.assert(
      fc.property(nonArray, (value) => {
        const text = JSON.stringify(value)
        const frames = frame(` ${text}\n`)
        expect(frames.bytes.toString('utf8')).toBe(`${text},`)
        expect(frames.messageEnds).toEqual([Buffer.byteLength(text) + 1])
      }),
    )
  })

  test('splitting stored bytes into arbitrary message-aligned parts does not change the result', () => {
    fc.assert(
      fc.property(fc.array(fc.jsonValue(), { minLength: 1 }), fc.array(fc.boolean()), (array, cuts) => {
        const frames = frame(JSON.stringify(array))
        const parts: Uint8Array[] = []
        let start = 0
        frames.messageEnds.forEach((end, i) => {
          if (cuts[i] ?? true) {
            parts.push(frames.bytes.subarray(start, end), new Uint8Array(0))
            start = end
          }
        })
        parts.push(frames.bytes.subarray(start))
        expect(JSON.parse(concat(jsonArrayParts(parts)))).toEqual(normalise(array))
      }),
    )
  })
})
