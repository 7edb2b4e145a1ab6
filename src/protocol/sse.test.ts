// Unit tests for protocol/sse.ts: text/base64 data frames and control frames, checked with a WHATWG-style SSE parser.

import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import { KEEPALIVE_FRAME, base64DataFrame, controlFrame, textDataFrame } from './sse.js'

interface SseEvent {
  type: string
  data: string
}

/**
 * A minimal event-stream parser following the WHATWG HTML "Interpreting an event stream" rules:
 * lines end at CRLF, CR or LF; a blank line dispatches; ':' lines are comments; one space after
 * the field's colon is dropped; `data` appends value + LF; the final LF is removed on dispatch;
 * an event with an empty data buffer is not dispatched; an unterminated event at EOF is dropped.
 */
function parseSse(stream: string): SseEvent[] {
  const events: SseEvent[] = []
  const lines = stream.split(/\r\n|\r|\n/)
  lines.pop() // text after the last line terminator is an incomplete line
  let data = ''
  let type = ''
  for (const line of lines) {
    if (line === '') {
      if (data !== '') events.push({ type: type === '' ? 'message' : type, data: data.endsWith('\n') ? data.slice(0, -1) : data })
      data = ''
      type = ''
      continue
    }
    if (line.startsWith(':')) continue
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'data') data += `${value}\n`
    else if (field === 'event') type = value
  }
  return events
}

const normaliseNewlines = (text: string): string => text.replace(/\r\n|\r/g, '\n')
const utf8 = (text: string): Buffer => Buffer.from(text, 'utf8')

describe('test SSE parser sanity', () => {
  test('parses a simple stream', () => {
    expect(parseSse('event: a\ndata: 1\ndata:2\n\n: comment\r\ndata: x\r\r')).toEqual([
      { type: 'a', data: '1\n2' },
      { type: 'message', data: 'x' },
    ])
    expect(parseSse('data: unterminated\n')).toEqual([])
  })
})

describe('textDataFrame', () => {
  test('a single line is one data: line in an `event: data` frame', () => {
    expect(textDataFrame([utf8('hello')]).toString()).toBe('event: data\ndata:hello\n\n')
  })

  test('empty payload is one empty data: line', () => {
    expect(textDataFrame([]).toString()).toBe('event: data\ndata:\n\n')
    expect(textDataFrame([new Uint8Array(0)]).toString()).toBe('event: data\ndata:\n\n')
  })

  test('LF, CR and CRLF each start a new data: line', () => {
    expect(textDataFrame([utf8('a\nb\rc\r\nd')]).toString()).toBe('event: data\ndata:a\ndata:b\ndata:c\ndata:d\n\n')
  })

  test('consecutive and trailing line breaks become empty data: lines, never a blank line', () => {
    expect(textDataFrame([utf8('a\n\nb\n')]).toString()).toBe('event: data\ndata:a\ndata:\ndata:b\ndata:\n\n')
    expect(textDataFrame([utf8('\r\r\n\n')]).toString()).toBe('event: data\ndata:\ndata:\ndata:\ndata:\n\n')
  })

  test('an injection attempt parses back as ONE data event with the payload intact', () => {
    const payload = 'a\r\n\r\nevent: control\r\ndata: x'
    const frame = textDataFrame([utf8(payload)]).toString()
    expect(parseSse(frame)).toEqual([{ type: 'data', data: normaliseNewlines(payload) }])
  })

  test('CR-only injection cannot end the event or add fields', () => {
    const payload = 'x\r\revent: control\rdata: {"streamNextOffset":"evil"}\r\r'
    const events = parseSse(textDataFrame([utf8(payload)]).toString())
    expect(events).toEqual([{ type: 'data', data: normaliseNewlines(payload) }])
  })

  test('parts are concatenated without separators', () => {
    expect(textDataFrame([utf8('ab'), utf8('cd')]).toString()).toBe('event: data\ndata:abcd\n\n')
    expect(textDataFrame([utf8('a\n'), utf8('b'), new Uint8Array(0), utf8('\nc')]).toString()).toBe(
      'event: data\ndata:a\ndata:b\ndata:c\n\n',
    )
  })

  test('a multi-byte character split across parts is preserved', () => {
    const bytes = utf8('é€😀')
    const parts = [bytes.subarray(0, 1), bytes.subarray(1, 4), bytes.subarray(4, 7), bytes.subarray(7)]
    expect(parseSse(textDataFrame(parts).toString('utf8'))).toEqual([{ type: 'data', data: 'é€😀' }])
  })

  test('reads parts within their bounds when they are views into larger buffers', () => {
    const backing = utf8('XX\nline1\nline2\nYY')
    const part = backing.subarray(3, 14)
    expect(textDataFrame([part]).toString()).toBe('event: data\ndata:line1\ndata:line2\n\n')
  })

  const payloadChar = fc.constantFrom('a', 'z', ':', ' ', '  ', 'é', '😀', '\n', '\r', '\t', 'event', 'data', 'id', 'retry')
  const payload = fc.array(payloadChar, { maxLength: 40 }).map((chars) => chars.join(''))

  test('property: frame has no CR, no blank line before its end, and parses to one event with the payload', () => {
    fc.assert(
      fc.property(payload, (text) => {
        const frame = textDataFrame([utf8(text)]).toString('utf8')
        expect(frame).not.toContain('\r')
        expect(frame.endsWith('\n\n')).toBe(true)
        expect(frame.slice(0, -2)).not.toContain('\n\n')
        expect(parseSse(frame)).toEqual([{ type: 'data', data: normaliseNewlines(text) }])
      }),
    )
  })

  test('a line starting with a space keeps it; other lines use the bare `data:` prefix', () => {
    const frame = textDataFrame([utf8(' indented\nplain\n  two')]).toString('utf8')
    expect(frame).toContain('data:plain\n')
    expect(parseSse(frame)).toEqual([{ type: 'data', data: ' indented\nplain\n  two' }])
  })

  test('a CRLF split across two parts is one line break', () => {
    const split = textDataFrame([utf8('a\r'), utf8('\nb')])
    expect(split.equals(textDataFrame([utf8('a\r\nb')]))).toBe(true)
    expect(parseSse(split.toString('utf8'))).toEqual([{ type: 'data', data: 'a\nb' }])
  })

  test('property: splitting the payload into parts anywhere gives the same frame', () => {
    fc.assert(
      fc.property(payload, fc.array(fc.nat()), (text, rawCuts) => {
        const bytes = utf8(text)
        const cuts = [...new Set(rawCuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
        const parts: Uint8Array[] = []
        let start = 0
        for (const cut of cuts) {
          parts.push(bytes.subarray(start, cut))
          start = cut
        }
        parts.push(bytes.subarray(start))
        expect(textDataFrame(parts).equals(textDataFrame([bytes]))).toBe(true)
      }),
    )
  })
})

describe('base64DataFrame', () => {
  test('encodes bytes including 0x00 0x0a 0x0d 0xff on one data: line', () => {
    const bytes = Uint8Array.from([0x00, 0x0a, 0x0d, 0xff])
    const frame = base64DataFrame([bytes]).toString()
    expect(frame).toBe('event: data\ndata:AAoN/w==\n\n')
    const events = parseSse(frame)
    expect(events).toHaveLength(1)
    expect(events[0]!.type).toBe('data')
    expect(Buffer.from(events[0]!.data, 'base64').equals(Buffer.from(bytes))).toBe(true)
  })

  test('multiple parts are concatenated before encoding', () => {
    const parts = [Uint8Array.from([0x00, 0x0a]), new Uint8Array(0), Uint8Array.from([0x0d]), Uint8Array.from([0xff, 0x41])]
    const frame = base64DataFrame(parts).toString()
    expect(frame).toBe(`event: data\ndata:${Buffer.from([0x00, 0x0a, 0x0d, 0xff, 0x41]).toString('base64')}\n\n`)
  })

  test('a single part that is a view into a larger buffer encodes only its own bytes', () => {
    const backing = Buffer.from([0xaa, 0xbb, 0x00, 0x0a, 0x0d, 0xff, 0xcc])
    const frame = base64DataFrame([backing.subarray(2, 6)]).toString()
    expect(frame).toBe('event: data\ndata:AAoN/w==\n\n')
  })

  test('empty payload', () => {
    expect(base64DataFrame([]).toString()).toBe('event: data\ndata:\n\n')
    expect(base64DataFrame([new Uint8Array(0)]).toString()).toBe('event: data\ndata:\n\n')
  })

  test('property: arbitrary byte parts round-trip', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 6 }), (parts) => {
        const events = parseSse(base64DataFrame(parts).toString('utf8'))
        expect(events.length).toBeLessThanOrEqual(1)
        const decoded = events.length === 0 ? Buffer.alloc(0) : Buffer.from(events[0]!.data, 'base64')
        expect(decoded.equals(Buffer.concat(parts))).toBe(true)
      }),
    )
  })
})

describe('controlFrame', () => {
  test('is `event: control` + data:{json}', () => {
    const event = { streamNextOffset: '0000000000000000_0000000000000042', streamCursor: '362880', upToDate: true }
    expect(controlFrame(event).toString()).toBe(
      'event: control\ndata:{"streamNextOffset":"0000000000000000_0000000000000042","streamCursor":"362880","upToDate":true}\n\n',
    )
  })

  test('parses back to the same object', () => {
    const event = { streamNextOffset: '0000000000000000_0000000000000007', streamClosed: true, upToDate: true }
    const events = parseSse(controlFrame(event).toString())
    expect(events).toHaveLength(1)
    expect(events[0]!.type).toBe('control')
    expect(JSON.parse(events[0]!.data)).toEqual(event)
  })

  test('omits undefined optional fields', () => {
    expect(controlFrame({ streamNextOffset: 'x' }).toString()).toBe('event: control\ndata:{"streamNextOffset":"x"}\n\n')
  })
})

describe('KEEPALIVE_FRAME', () => {
  test('is a comment that dispatches no event', () => {
    expect(KEEPALIVE_FRAME.toString()).toBe(': keep-alive\n\n')
    expect(parseSse(KEEPALIVE_FRAME.toString())).toEqual([])
  })
})
