// protocol/path.ts — stream path validation: the part of the URL after the route prefix.
// Paths may contain '/', but never traversal segments, empty segments or control characters.

import { StreamError } from './errors.js'

const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/
const RESERVED_PREFIX = '__ds/'

/** Decodes a raw (percent-encoded) URL path remainder and validates it. */
export function decodeStreamPath(raw: string, bytesMax: number): string {
  let path: string
  try {
    path = decodeURIComponent(raw)
  } catch {
    throw new StreamError('INVALID_PATH', 'stream path has malformed percent-encoding')
  }
  validateStreamPath(path, bytesMax)
  return path
}

export function validateStreamPath(path: string, bytesMax: number): void {
  if (path.length === 0) throw new StreamError('INVALID_PATH', 'stream path is empty')
  if (Buffer.byteLength(path) > bytesMax) throw new StreamError('INVALID_PATH', `stream path longer than ${bytesMax} bytes`)
  if (CONTROL_CHARS.test(path)) throw new StreamError('INVALID_PATH', 'stream path contains control characters')
  if (path.includes('\\')) throw new StreamError('INVALID_PATH', 'stream path contains a backslash')
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') {
      throw new StreamError('INVALID_PATH', 'stream path has an empty, "." or ".." segment')
    }
  }
}

export function isReservedPath(path: string): boolean {
  return path.startsWith(RESERVED_PREFIX) || path === '__ds'
}
