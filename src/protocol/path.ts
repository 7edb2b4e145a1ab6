// protocol/path.ts — stream path validation: the part of the URL after the route prefix.
// Paths may contain '/', but never traversal segments, empty segments or control characters.

import { StreamError } from './errors.js'

const RESERVED_PREFIX = '__ds/'
const SLASH = 0x2f
const DOT = 0x2e
const BACKSLASH = 0x5c

/** Decodes a raw (percent-encoded) URL path remainder and validates it. */
export function decodeStreamPath(raw: string, bytesMax: number): string {
  let path = raw
  if (raw.includes('%')) {
    try {
      path = decodeURIComponent(raw)
    } catch {
      throw new StreamError('INVALID_PATH', 'stream path has malformed percent-encoding')
    }
  }
  validateStreamPath(path, bytesMax)
  return path
}

/** One pass over the characters (this runs on every request); the problems are reported
 * in a fixed order whatever their order in the path. */
export function validateStreamPath(path: string, bytesMax: number): void {
  if (path.length === 0) throw new StreamError('INVALID_PATH', 'stream path is empty')
  // A UTF-16 unit is at most 3 UTF-8 bytes: most paths need no byte count.
  if (path.length * 3 > bytesMax && Buffer.byteLength(path) > bytesMax) throw new StreamError('INVALID_PATH', `stream path longer than ${bytesMax} bytes`)
  let control = false
  let backslash = false
  let badSegment = false
  let segmentStart = 0
  for (let i = 0; i <= path.length; i++) {
    const c = i < path.length ? path.charCodeAt(i) : SLASH
    if (c === SLASH) {
      const length = i - segmentStart
      const dots = length <= 2 && (length === 0 || path.charCodeAt(segmentStart) === DOT) && (length < 2 || path.charCodeAt(segmentStart + 1) === DOT)
      badSegment ||= dots
      segmentStart = i + 1
    } else if (c <= 0x1f || (c >= 0x7f && c <= 0x9f)) {
      control = true
    } else if (c === BACKSLASH) {
      backslash = true
    }
  }
  if (control) throw new StreamError('INVALID_PATH', 'stream path contains control characters')
  if (backslash) throw new StreamError('INVALID_PATH', 'stream path contains a backslash')
  if (badSegment) throw new StreamError('INVALID_PATH', 'stream path has an empty, "." or ".." segment')
}

export function isReservedPath(path: string): boolean {
  return path.startsWith(RESERVED_PREFIX) || path === '__ds'
}
