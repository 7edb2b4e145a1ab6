// The official Durable Streams conformance suite, run against a real ringstream server
// listening on a loopback port. The long-poll timeout is short so offset=now long-polls end fast.

import { runConformanceTests } from '@durable-streams/server-conformance-tests'
import { afterAll, beforeAll, describe } from 'vitest'
import { type RingstreamServer, createServer } from '../src/index.js'

const LONG_POLL_TIMEOUT_MS = 1000

describe('conformance: memory storage', () => {
  const config = { baseUrl: '', longPollTimeoutMs: LONG_POLL_TIMEOUT_MS }
  let server: RingstreamServer

  beforeAll(async () => {
    server = createServer({ port: 0, durability: 'memory', longPollTimeoutMs: LONG_POLL_TIMEOUT_MS })
    await server.listen()
    config.baseUrl = server.url
  })

  afterAll(async () => {
    await server.close()
  })

  runConformanceTests(config)
})
