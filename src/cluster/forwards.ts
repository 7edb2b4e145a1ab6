// cluster/forwards.ts — streams this node answers for but another node holds: a fork
// whose source lives on another node is created on the source's node (so every fork rule,
// soft delete and cascade included, is that node's own), and the node the proxy sends the
// fork's path to keeps `path → holder URL` and forwards every request for it there
// (cluster/forwarding.ts). Entries are control records (`fwd/<path>`, streams/controls.ts):
// durable like stream state, in memory whole (one per such fork), never removed (the path
// stays the holder's, deleted or not, so both nodes never hold one path).

import type { ControlReceiver, Controls } from '../streams/controls.js'
import type { MaybePromise } from '../util/maybe.js'

const PREFIX = 'fwd/'

export class ForwardTable implements ControlReceiver {
  private readonly holders = new Map<string, string>()

  constructor(private readonly controls: Controls) {}

  get size(): number {
    return this.holders.size
  }

  /** The URL of the node holding `path`, if another node does. */
  holderOf(path: string): string | undefined {
    return this.holders.size === 0 ? undefined : this.holders.get(path)
  }

  /** Records that `holder` holds `path`; resolves once durable. */
  set(path: string, holder: string): MaybePromise<void> {
    if (this.holders.get(path) === holder) return undefined
    this.holders.set(path, holder)
    return this.controls.put(`${PREFIX}${path}`, holder)
  }

  /** Forgets `path`'s holder (this node holds it now: a stream moved here); resolves once durable. */
  clear(path: string): MaybePromise<void> {
    if (!this.holders.has(path)) return undefined
    this.holders.delete(path)
    return this.controls.put(`${PREFIX}${path}`, undefined)
  }

  restore(key: string, value: string | undefined): void {
    if (!key.startsWith(PREFIX)) return
    const path = key.slice(PREFIX.length)
    if (value === undefined) this.holders.delete(path)
    else this.holders.set(path, value)
  }
}
