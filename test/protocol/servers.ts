// test/protocol/servers.ts — runs a protocol test file against a real server in each
// class it must hold in: memory, and fsync on both I/O backends (uring where this machine
// has it; CI requires it), each on a fresh data directory.

import { describe } from 'vitest'
import type { ServerConfig } from '../../src/index.js'
import { type LiveServer, useServer } from '../helpers.js'
import { uringUnavailable } from '../uring-available.js'

export type ProtocolServer = Pick<LiveServer, 'url' | 'stream'>

const CLASSES: ReadonlyArray<{ readonly label: string; readonly config: Partial<ServerConfig>; readonly skip?: string }> = [
  { label: 'memory', config: { durability: 'memory' } },
  { label: 'fsync, --io fs', config: { durability: 'fsync', io: 'fs' } },
  { label: 'fsync, --io uring', config: { durability: 'fsync', io: 'uring' }, skip: uringUnavailable },
]

/** Defines `tests` once per class, each against its own running server. */
export function inEveryClass(name: string, tests: (server: ProtocolServer) => void, options: Partial<ServerConfig> = {}): void {
  for (const { label, config, skip } of CLASSES) {
    if (skip !== undefined) {
      describe.skip(`${name} (${label}: ${skip})`, () => {})
      continue
    }
    describe(`${name} (${label})`, () => tests(useServer({ walSegmentBytes: 32 * 1024 * 1024, ...config, ...options })))
  }
}
