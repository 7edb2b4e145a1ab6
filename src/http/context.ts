// http/context.ts — what every HTTP handler shares: the engine, the configuration, the
// live-reader bookkeeping (long-polls and SSE sessions) and injectable time and randomness.

import type { ServerConfig } from '../config.js'
import { nextCursor } from '../protocol/cursor.js'
import type { Engine } from '../streams/engine.js'

export interface Closable {
  /** Ends the live read during shutdown. */
  shutdown(): void
}

export class HttpContext {
  readonly live = new Set<Closable>()

  constructor(
    readonly engine: Engine,
    readonly config: ServerConfig,
    readonly now: () => number = Date.now,
    readonly random: () => number = Math.random,
  ) {}

  cursor(clientCursor: string | undefined): string {
    return nextCursor(this.now(), clientCursor, this.random)
  }
}
