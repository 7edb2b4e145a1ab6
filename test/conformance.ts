// test/conformance.ts — runs the official conformance suite against a real ringstream
// server in one durability class (durable classes get a fresh temporary data directory).

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runConformanceTests } from '@durable-streams/server-conformance-tests'
import { afterAll, beforeAll, describe } from 'vitest'
import type { Durability } from '../src/protocol/headers.js'
import { type RingstreamServer, createServer } from '../src/index.js'

/** Short so the suite's offset=now long-polls end quickly. */
const LONG_POLL_TIMEOUT_MS = 1000

export function conformanceSuite(durability: Durability): void {
  describe(`conformance: ${durability}`, () => {
    const config = { baseUrl: '', longPollTimeoutMs: LONG_POLL_TIMEOUT_MS }
    let server: RingstreamServer
    let dataDir: string

    beforeAll(async () => {
      dataDir = mkdtempSync(join(tmpdir(), `ringstream-conformance-${durability}-`))
      server = createServer({ port: 0, durability, dataDir, longPollTimeoutMs: LONG_POLL_TIMEOUT_MS, walSegmentBytes: 32 * 1024 * 1024 })
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
