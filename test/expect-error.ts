// test/expect-error.ts — shared assertion for unit tests: the code of the StreamError a call throws.

import { expect } from 'vitest'
import { StreamError } from '../src/protocol/errors.js'

/** Runs `fn`, requires it to throw a StreamError, and returns that error's code. */
export function errorCode(fn: () => unknown): string {
  try {
    fn()
  } catch (error) {
    expect(error).toBeInstanceOf(StreamError)
    return (error as StreamError).code
  }
  throw new Error('expected a StreamError, nothing was thrown')
}

/** Resolves to a rejection's `code` (Node-style I/O errors), failing if the promise resolves. */
export async function rejectionCode(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return (error as { code?: unknown }).code
  }
  throw new Error('expected a rejection')
}
