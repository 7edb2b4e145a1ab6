// test/protocol/servers.ts — runs a protocol test file against a real server in each
// class it must hold in: memory, and fsync on both I/O backends (uring where this machine
// has it; CI requires it), each on a fresh data directory.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe } from 'vitest'
import { type RingstreamServer, type ServerConfig, createServer } from '../../src/index.js'
import { testHttpBackend } from '../helpers.js'
import { uringUnavailable } from '../uring-available.js'

export interface ProtocolServer {
  readonly url: string
  stream(path: string): string
}

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
    describe(`${name} (${label})`, () => {
      let server: RingstreamServer | undefined
      let dataDir: string | undefined
      beforeAll(async () => {
        dataDir = mkdtempSync(join(tmpdir(), 'ringstream-protocol-'))
        server = createServer({ port: 0, longPollTimeoutMs: 500, walSegmentBytes: 32 * 1024 * 1024, dataDir, http: testHttpBackend(), ...config, ...options })
        await server.listen()
      })
      afterAll(async () => {
        await server?.close()
        if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true })
      })
      tests({
        get url() {
          return server!.url
        },
        stream: (path) => `${server!.url}/v1/stream/${path}`,
      })
    })
  }
}
