// protocol/json.ts — JSON mode framing (PROTOCOL §7.1).
// Stored form: every message's exact bytes followed by one ',' separator, so a catch-up read
// of any message-aligned range is '[' + bytes without the last ',' + ']' — no re-encoding.
// An appended top-level array is flattened exactly one level; other values are one message.

import { isUtf8 } from 'node:buffer'
import { StreamError } from './errors.js'

const COMMA = 0x2c
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const QUOTE = 0x22
const BACKSLASH = 0x5c

export interface JsonFrames {
  /** Messages, each followed by ','. */
  readonly bytes: Buffer
  /** End position (exclusive, after the separator) of each message within `bytes`. */
  readonly messageEnds: number[]
}

function isSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d
}

function trimRange(body: Uint8Array, start: number, end: number): [number, number] {
  while (start < end && isSpace(body[start]!)) start++
  while (end > start && isSpace(body[end - 1]!)) end--
  return [start, end]
}

/** Byte ranges of the top-level elements of an already-validated JSON array. */
function arrayElementRanges(body: Uint8Array, open: number, close: number): Array<[number, number]> {
  const ranges: Array<[number, number]> = []
  let depth = 0
  let inString = false
  let elementStart = open + 1
  for (let i = open + 1; i < close; i++) {
    const byte = body[i]!
    if (inString) {
      if (byte === BACKSLASH) i++
      else if (byte === QUOTE) inString = false
      continue
    }
    if (byte === QUOTE) inString = true
    else if (byte === OPEN_BRACKET || byte === OPEN_BRACE) depth++
    else if (byte === CLOSE_BRACKET || byte === CLOSE_BRACE) depth--
    else if (byte === COMMA && depth === 0) {
      ranges.push(trimRange(body, elementStart, i))
      elementStart = i + 1
    }
  }
  const last = trimRange(body, elementStart, close)
  if (last[1] > last[0]) ranges.push(last)
  return ranges
}

/**
 * Validates a JSON append body and frames it for storage.
 * `allowEmpty` is true for PUT (an empty array creates an empty stream) and false for POST.
 */
export function frameJsonAppend(body: Uint8Array, allowEmpty: boolean): JsonFrames {
  if (!isUtf8(body)) throw new StreamError('BAD_REQUEST', 'JSON body is not valid UTF-8')
  const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8')
  try {
    JSON.parse(text)
  } catch {
    throw new StreamError('BAD_REQUEST', 'body is not valid JSON')
  }
  const [start, end] = trimRange(body, 0, body.length)
  const ranges = body[start] === OPEN_BRACKET ? arrayElementRanges(body, start, end - 1) : [[start, end] as [number, number]]
  if (ranges.length === 0 && !allowEmpty) throw new StreamError('BAD_REQUEST', 'empty JSON array appends nothing')
  let size = 0
  for (const [s, e] of ranges) size += e - s + 1
  const bytes = Buffer.allocUnsafe(size)
  const messageEnds: number[] = []
  let at = 0
  for (const [s, e] of ranges) {
    bytes.set(body.subarray(s, e), at)
    at += e - s
    bytes[at++] = COMMA
    messageEnds.push(at)
  }
  return { bytes, messageEnds }
}

const EMPTY_ARRAY = Buffer.from('[]')
/** A JSON array body is OPEN, the stored bytes less their last ',', then CLOSE. */
export const OPEN = Buffer.from('[')
export const CLOSE = Buffer.from(']')

/** Wraps stored message bytes (each ending in ',') as a JSON array body. */
export function jsonArrayParts(stored: Uint8Array[]): Uint8Array[] {
  let total = 0
  for (const part of stored) total += part.length
  if (total === 0) return [EMPTY_ARRAY]
  const parts = stored.filter((part) => part.length > 0)
  const last = parts[parts.length - 1]!
  parts[parts.length - 1] = last.subarray(0, last.length - 1)
  return [OPEN, ...parts, CLOSE]
}
