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

/** End of the string whose opening quote is at `quote`: the index of its closing quote
 * (the body is valid JSON). Found with indexOf, which scans natively: records are mostly
 * strings, and a byte-at-a-time loop over them cost more than JSON.parse itself. */
function stringEnd(body: Buffer, quote: number): number {
  let at = body.indexOf(QUOTE, quote + 1)
  for (;;) {
    let backslashes = 0
    while (body[at - 1 - backslashes] === BACKSLASH) backslashes++
    if (backslashes % 2 === 0) return at
    at = body.indexOf(QUOTE, at + 1)
  }
}

/** The top-level elements of an already-validated JSON array as flat [start, end) pairs. */
function arrayElementRanges(body: Buffer, open: number, close: number): number[] {
  const ranges: number[] = []
  let depth = 0
  let elementStart = open + 1
  for (let i = open + 1; i < close; i++) {
    const byte = body[i]!
    if (byte === QUOTE) i = stringEnd(body, i)
    else if (byte === OPEN_BRACKET || byte === OPEN_BRACE) depth++
    else if (byte === CLOSE_BRACKET || byte === CLOSE_BRACE) depth--
    else if (byte === COMMA && depth === 0) {
      pushTrimmed(ranges, body, elementStart, i)
      elementStart = i + 1
    }
  }
  pushTrimmed(ranges, body, elementStart, close)
  return ranges
}

function pushTrimmed(ranges: number[], body: Uint8Array, start: number, end: number): void {
  const [s, e] = trimRange(body, start, end)
  if (e > s) ranges.push(s, e)
}

/**
 * Validates a JSON append body and frames it for storage. The framed bytes may be the
 * body's own memory (an array written without spaces between its elements is already the
 * stored form once its ']' becomes ','): the caller hands the body over.
 * `allowEmpty` is true for PUT (an empty array creates an empty stream) and false for POST.
 */
export function frameJsonAppend(body: Uint8Array, allowEmpty: boolean): JsonFrames {
  if (!isUtf8(body)) throw new StreamError('BAD_REQUEST', 'JSON body is not valid UTF-8')
  const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  try {
    JSON.parse(bytes.toString('utf8'))
  } catch {
    throw new StreamError('BAD_REQUEST', 'body is not valid JSON')
  }
  const [start, end] = trimRange(body, 0, body.length)
  const ranges = body[start] === OPEN_BRACKET ? arrayElementRanges(bytes, start, end - 1) : [start, end]
  if (ranges.length === 0 && !allowEmpty) throw new StreamError('BAD_REQUEST', 'empty JSON array appends nothing')
  const messageEnds: number[] = new Array(ranges.length / 2)
  if (body[start] === OPEN_BRACKET && contiguous(ranges, end - 1)) {
    // [a,b,c] → a,b,c, in place
    const first = ranges[0]!
    for (let i = 1; i < ranges.length; i += 2) messageEnds[(i - 1) / 2] = ranges[i]! + 1 - first
    bytes[end - 1] = COMMA
    return { bytes: bytes.subarray(first, end), messageEnds }
  }
  let size = 0
  for (let i = 0; i < ranges.length; i += 2) size += ranges[i + 1]! - ranges[i]! + 1
  const framed = Buffer.allocUnsafe(size)
  let at = 0
  for (let i = 0; i < ranges.length; i += 2) {
    framed.set(body.subarray(ranges[i], ranges[i + 1]), at)
    at += ranges[i + 1]! - ranges[i]!
    framed[at++] = COMMA
    messageEnds[i / 2] = at
  }
  return { bytes: framed, messageEnds }
}

/** Whether non-empty element ranges follow one another with exactly one ',' between them,
 * the last one ending right before the array's ']'. */
function contiguous(ranges: readonly number[], close: number): boolean {
  if (ranges.length === 0 || ranges[ranges.length - 1] !== close) return false
  for (let i = 2; i < ranges.length; i += 2) if (ranges[i] !== ranges[i - 1]! + 1) return false
  return true
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
