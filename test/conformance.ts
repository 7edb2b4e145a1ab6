// test/conformance.ts — runs the official conformance suite against a real ringstream
// server in one durability class and I/O backend (durable classes get a fresh temporary
// data directory).

import { runConformanceTests } from '@durable-streams/server-conformance-tests'
import { beforeAll, describe } from 'vitest'
import type { HttpBackend, IoBackend } from '../src/config.js'
import type { Durability } from '../src/protocol/headers.js'
import { useServer } from './helpers.js'
import { uringUnavailable } from './uring-available.js'

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
    const live = useServer({ durability, io, ...(http === 'auto' ? {} : { http }), longPollTimeoutMs: LONG_POLL_TIMEOUT_MS, walSegmentBytes: 32 * 1024 * 1024, webhooks: true })
    beforeAll(() => {
      config.baseUrl = live.url
    })

    runConformanceTests(config)
  })
}
