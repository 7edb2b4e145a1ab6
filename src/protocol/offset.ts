// protocol/offset.ts — the opaque offset token and the `offset` query parameter.
// Format: 16 zero-padded digits, '_', 16 zero-padded digits. The first field is an epoch
// (always 0 today, reserved for retention/compaction); the second is the byte position in
// the stream's stored wire bytes. Fixed width keeps offsets lexicographically sortable.

import { StreamError } from './errors.js'

const FIELD_WIDTH = 16
const OFFSET_PATTERN = /^(\d{16})_(\d{16})$/
const ZEROS = '0000000000000000'
const EPOCH_FIELD = ZEROS

export type OffsetParam =
  | { kind: 'start' }
  | { kind: 'now' }
  | { kind: 'at'; position: number }

export function formatOffset(position: number): string {
  const digits = String(position)
  return `${EPOCH_FIELD}_${ZEROS.slice(digits.length)}${digits}`
}

/** Parses a concrete offset token (no sentinels). Returns null when malformed. */
export function parseOffsetToken(token: string): number | null {
  const match = OFFSET_PATTERN.exec(token)
  if (match === null) return null
  if (match[1] !== EPOCH_FIELD) return null
  const position = Number(match[2])
  return Number.isSafeInteger(position) ? position : null
}

/** Parses the `offset` query value; `undefined` means the parameter was absent. */
export function parseOffsetParam(raw: string | undefined): OffsetParam {
  if (raw === undefined || raw === '-1') return { kind: 'start' }
  if (raw === 'now') return { kind: 'now' }
  if (raw === '') throw new StreamError('INVALID_OFFSET', 'offset must not be empty')
  const position = parseOffsetToken(raw)
  if (position === null) {
    throw new StreamError('INVALID_OFFSET', `malformed offset (expected -1, now or ${ZEROS}_${ZEROS.slice(0, FIELD_WIDTH - 1)}N)`)
  }
  return { kind: 'at', position }
}
