// protocol/headers.ts — parsing and validating protocol request headers. Pure functions:
// raw header strings in, typed values out, StreamError('BAD_REQUEST') for anything malformed.

import { StreamError, badRequest } from './errors.js'

export const DEFAULT_CONTENT_TYPE = 'application/octet-stream'
const TOKEN_CHARS = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
/** RFC 3339 date-time: full date, 'T', time with optional fraction, Z or ±hh:mm. */
const RFC3339_PATTERN = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/

export type Durability = 'memory' | 'buffered' | 'fsync'
const DURABILITIES: ReadonlySet<string> = new Set(['memory', 'buffered', 'fsync'])

/** Strict non-negative decimal integer: no sign, no leading zeros, no fraction, no exponent.
 * Checked char by char: it runs twice per producer append, where a RegExp test costs more. */
export function parseDecimal(raw: string, name: string): number {
  let digits = raw.length > 0 && (raw.length === 1 || raw.charCodeAt(0) !== 48)
  for (let i = 0; digits && i < raw.length; i++) {
    const c = raw.charCodeAt(i)
    digits = c >= 48 && c <= 57
  }
  if (!digits) throw badRequest(`${name} must be a non-negative decimal integer without leading zeros`)
  const value = Number(raw)
  if (!Number.isSafeInteger(value)) throw badRequest(`${name} must be at most 2^53-1`)
  return value
}

export interface ContentType {
  /** As the client sent it, media type lower-cased, parameters kept (returned on reads). */
  readonly value: string
  /** type/subtype, lower-cased: what "matches" compares. */
  readonly essence: string
}

/** The last Content-Type parsed: appends repeat one value, and the result is immutable. */
let lastContentType: { readonly raw: string; readonly parsed: ContentType } | undefined

export function parseContentType(raw: string): ContentType {
  if (lastContentType?.raw === raw) return lastContentType.parsed
  const parsed = parseContentTypeOnce(raw)
  lastContentType = { raw, parsed }
  return parsed
}

function parseContentTypeOnce(raw: string): ContentType {
  const trimmed = raw.trim()
  const semi = trimmed.indexOf(';')
  const media = (semi === -1 ? trimmed : trimmed.slice(0, semi)).trim().toLowerCase()
  const slash = media.indexOf('/')
  if (slash <= 0 || slash === media.length - 1) throw badRequest('Content-Type must be a type/subtype media type')
  if (!TOKEN_CHARS.test(media.slice(0, slash)) || !TOKEN_CHARS.test(media.slice(slash + 1))) {
    throw badRequest('Content-Type contains invalid characters')
  }
  const params = semi === -1 ? '' : trimmed.slice(semi)
  return { value: media + params, essence: media }
}

export function isJsonContentType(type: ContentType): boolean {
  return type.essence === 'application/json'
}

/** SSE carries text/* and JSON as text; everything else is base64 (Stream-SSE-Data-Encoding). */
export function isSseTextContentType(type: ContentType): boolean {
  return type.essence.startsWith('text/') || type.essence === 'application/json'
}

export function parseTtlSeconds(raw: string): number {
  return parseDecimal(raw.trim(), 'Stream-TTL')
}

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0
}

/** Returns epoch milliseconds; rejects anything that is not a real RFC 3339 date-time
 * (no rolling 2024-02-30 over into March). A leap second (:60) is accepted. */
export function parseExpiresAt(raw: string): number {
  const match = RFC3339_PATTERN.exec(raw.trim())
  if (match === null) throw badRequest('Stream-Expires-At must be an RFC 3339 timestamp')
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [number, number, number, number, number, number]
  const monthDays = month === 2 && !isLeapYear(year) ? 28 : DAYS_IN_MONTH[month - 1]
  if (monthDays === undefined || day < 1 || day > monthDays || hour > 23 || minute > 59 || second > 60) {
    throw badRequest('Stream-Expires-At is not a valid date-time')
  }
  const zone = match[8]!
  let offsetMinutes = 0
  if (zone !== 'Z' && zone !== 'z') {
    const zoneHours = Number(zone.slice(1, 3))
    const zoneMinutes = Number(zone.slice(4, 6))
    if (zoneHours > 23 || zoneMinutes > 59) throw badRequest('Stream-Expires-At has an invalid UTC offset')
    offsetMinutes = (zone[0] === '-' ? -1 : 1) * (zoneHours * 60 + zoneMinutes)
  }
  const fraction = match[7] === undefined ? 0 : Math.floor(Number(`0${match[7]}`) * 1000)
  return Date.UTC(year, month - 1, day, hour, minute, second, fraction) - offsetMinutes * 60_000
}

/** `Stream-Closed: true` (case-insensitive); any other present value is a client error. */
/** Stream-Closed: `true` (case-insensitive) closes; PROTOCOL §4.1 says any other value
 * MUST be treated as if the header were absent, and SHOULD NOT be an error. */
export function parseStreamClosed(raw: string): boolean {
  return raw.length >= 4 && raw.trim().toLowerCase() === 'true'
}

export function parseDurability(raw: string): Durability | undefined {
  if (raw === '') return undefined
  const value = raw.trim().toLowerCase()
  if (!DURABILITIES.has(value)) throw badRequest('Stream-Durability must be memory, buffered or fsync')
  return value as Durability
}

export interface ProducerHeaders {
  readonly id: string
  readonly epoch: number
  readonly seq: number
}

/** All three producer headers together or none (PROTOCOL §5.2.1). Empty strings count as absent. */
export function parseProducerHeaders(id: string, epoch: string, seq: string, idBytesMax: number): ProducerHeaders | undefined {
  const present = (id !== '' ? 1 : 0) + (epoch !== '' ? 1 : 0) + (seq !== '' ? 1 : 0)
  if (present === 0) return undefined
  if (present !== 3) throw badRequest('Producer-Id, Producer-Epoch and Producer-Seq must be sent together')
  if (Buffer.byteLength(id) > idBytesMax) throw badRequest(`Producer-Id longer than ${idBytesMax} bytes`)
  return {
    id,
    epoch: parseDecimal(epoch.trim(), 'Producer-Epoch'),
    seq: parseDecimal(seq.trim(), 'Producer-Seq'),
  }
}

export function parseStreamSeq(raw: string, bytesMax: number): string | undefined {
  if (raw === '') return undefined
  if (Buffer.byteLength(raw) > bytesMax) throw badRequest(`Stream-Seq longer than ${bytesMax} bytes`)
  return raw
}

export function parseSubOffset(raw: string): number {
  return parseDecimal(raw.trim(), 'Stream-Fork-Sub-Offset')
}

export function assertNoConflict(condition: boolean, message: string): void {
  if (condition) throw new StreamError('BAD_REQUEST', message)
}
