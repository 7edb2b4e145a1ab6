// streams/controls.ts — state that belongs to no stream (subscriptions and their cursors,
// leases, wakes) kept by the same rules as stream state: each change is a WAL record
// committed in the server's durability class, checkpoints store the keys changed since
// the last one (the registry store's controls), and recovery hands the stored values and
// then the replayed records to every receiver, in order. Keys and values are strings;
// each receiver owns the keys of its prefix (subscriptions `sub/`, cluster forwards `fwd/`)
// and ignores the others.

import type { Durability } from '../protocol/headers.js'
import type { Storage } from '../storage/types.js'
import type { MaybePromise } from '../util/maybe.js'
import { storageError } from './storage-error.js'
import { commitPromise } from './pending-commit.js'

/** Who gets control state back at startup: the checkpoint's values, then each replayed change. */
export interface ControlReceiver {
  restore(key: string, value: string | undefined): void
}

export class Controls {
  /** Committed since the last checkpoint took them (durable classes only). */
  private changed = new Map<string, string | undefined>()
  readonly receivers: ControlReceiver[] = []

  constructor(
    private readonly storage: Storage,
    private readonly durability: Durability,
    private readonly now: () => number,
  ) {}

  /** Sets (or removes: undefined) a key; resolves once durable for the server's class.
   * Rejects with a StreamError (507 on a full disk). */
  put(key: string, value: string | undefined): MaybePromise<void> {
    let pending: Promise<unknown> | undefined
    try {
      pending = commitPromise(this.storage, { kind: 'control', key, value }, this.durability, this.now())
    } catch (error) {
      throw storageError(error)
    }
    if (pending === undefined) return undefined
    return pending.then(
      () => void this.changed.set(key, value),
      (error: unknown) => {
        throw storageError(error)
      },
    )
  }

  /** Recovery: a value from the checkpoint. */
  load(key: string, value: string): void {
    for (const receiver of this.receivers) receiver.restore(key, value)
  }

  /** Recovery: a replayed record; the next checkpoint stores it. */
  replay(key: string, value: string | undefined): void {
    this.changed.set(key, value)
    for (const receiver of this.receivers) receiver.restore(key, value)
  }

  /** What a checkpoint stores. */
  take(): Map<string, string | undefined> {
    const taken = this.changed
    this.changed = new Map()
    return taken
  }

  /** A checkpoint failed: its keys are still to be stored, unless changed again since. */
  untake(taken: ReadonlyMap<string, string | undefined>): void {
    for (const [key, value] of taken) if (!this.changed.has(key)) this.changed.set(key, value)
  }
}
