// streams/storage-error.ts — storage failures as the protocol's one error type: a full
// disk is 507, anything else 500. Operating errors, never a crash.

import { isIoError } from '../io/types.js'
import { StreamError } from '../protocol/errors.js'

export function storageError(error: unknown): StreamError {
  if (error instanceof StreamError) return error
  if (isIoError(error, 'ENOSPC')) return new StreamError('INSUFFICIENT_STORAGE', 'no space left on the storage device')
  return new StreamError('IO_ERROR', `storage write failed: ${(error as Error).message}`)
}
