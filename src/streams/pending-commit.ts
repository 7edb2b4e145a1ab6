// streams/pending-commit.ts — a change handed to storage and not yet durable, as the engine
// tracks it per stream (Stream.lastCommit): what waits for it is told once it settles. A
// callback list, not a promise: the append path makes one per request and most are waited
// for by nobody; a promise is made only for a caller that asks for one.

import type { Durability } from '../protocol/headers.js'
import type { Change, Storage } from '../storage/types.js'
import { log } from '../util/log.js'
import { promised } from '../util/maybe.js'

export type Settle = (error: unknown) => void

export class PendingCommit {
  private waiters: Settle[] | undefined
  private settled = false
  private error: unknown

  /** Calls `waiter` once the commit settles (at once when it has): with its error, or
   * undefined when it is durable. */
  wait(waiter: Settle): void {
    if (this.settled) return waiter(this.error)
    ;(this.waiters ??= []).push(waiter)
  }

  promise(): Promise<void> {
    return new Promise((resolve, reject) => this.wait((error) => (error === undefined ? resolve() : reject(error))))
  }

  settle(error: unknown): void {
    this.settled = true
    this.error = error
    const waiters = this.waiters
    this.waiters = undefined
    if (waiters === undefined) return
    for (const waiter of waiters) {
      // One waiter's bug must not starve the others.
      try {
        waiter(error)
      } catch (thrown) {
        log.error({ err: thrown }, `ringstream: a commit's waiter failed: ${String(thrown)}`)
      }
    }
  }
}

/** Storage.commit as a promise (undefined: done already), for the paths that are not per
 * append (deletes, control records). */
export function commitPromise(storage: Storage, change: Change, durability: Durability, timeMs: number): Promise<void> | undefined {
  let waits = false
  const settled = promised<void>((done) => {
    waits = storage.commit(change, durability, timeMs, (error) => done(error, undefined))
  })
  return waits ? (settled as Promise<void>) : undefined
}
