// test/conformance.ts — runs the official conformance suite against a real ringstream
// server in one durability class and I/O backend (durable classes get a fresh temporary
// data directory).

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runConformanceTests } from '@durable-streams/server-conformance-tests'
import { afterAll, beforeAll, describe } from 'vitest'
import type { HttpBackend, IoBackend } from '../src/config.js'
import { uringUnavailable } from './uring-available.js'
import type { Durability } from '../src/protocol/headers.js'
import { type RingstreamServer, createServer } from '../src/index.js'

/** Short so the suite's offset=now long-polls end quickly. */
const LONG_POLL_TIMEOUT_MS = 1000

/** Durable classes run on one real I/O backend each: `uring` (Linux only) or `fs`. */
export function conformanceSuite(durability: Durability, io: IoBackend = 'fs', http: HttpBackend = 'auto'): void {
  const label = `${durability === 'memory' ? durability : `${durability}, --io ${io}`}${http === 'node' ? ', --http node' : ''}`
  if (io === 'uring' && uringUnavailable !== undefined) {
    describe.skip(`conformance: ${label} (${uringUnavailable})`, () => {})
    return
  }
  describe(`conformance: ${label}`, () => {
    // The reserved subscription block too (webhooks on: the suite's receivers listen on 127.0.0.1).
    const config = { baseUrl: '', longPollTimeoutMs: LONG_POLL_TIMEOUT_MS, subscriptions: true }
    let server: RingstreamServer
    let dataDir: string

    beforeAll(async () => {
      dataDir = mkdtempSync(join(tmpdir(), `ringstream-conformance-${durability}-`))
      server = createServer({ port: 0, durability, io, http, dataDir, longPollTimeoutMs: LONG_POLL_TIMEOUT_MS, walSegmentBytes: 32 * 1024 * 1024, webhooks: true })
      await server.listen()
      config.baseUrl = server.url
    })

    afterAll(async () => {
      await server.close()
      rmSync(dataDir, { recursive: true, force: true })
    })

    runConformanceTests(config)
  })
}
