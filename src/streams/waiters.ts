// streams/waiters.ts — registering long-poll and SSE waiters on a stream and waking them.
// The set is allocated only while someone waits, so idle streams cost nothing here.

import type { Stream, Waiter } from './stream.js'

export function addWaiter(stream: Stream, waiter: Waiter): void {
  stream.waiters ??= new Set()
  stream.waiters.add(waiter)
}

export function removeWaiter(stream: Stream, waiter: Waiter): void {
  const waiters = stream.waiters
  if (waiters === undefined) return
  waiters.delete(waiter)
  if (waiters.size === 0) stream.waiters = undefined
}

/** Wakes every waiter once; a waiter may re-register itself during wake(). */
export function wakeWaiters(stream: Stream): void {
  const waiters = stream.waiters
  if (waiters === undefined) return
  stream.waiters = undefined
  for (const waiter of waiters) waiter.wake(stream)
}
