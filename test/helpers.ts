// test/helpers.ts — starting a real ringstream server on a loopback port for a test file.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll } from 'vitest'
import type { HttpBackend } from '../src/config.js'
import { type RingstreamServer, type ServerConfig, createServer } from '../src/index.js'

export interface LiveServer {
  readonly url: string
  readonly server: RingstreamServer
  stream(path: string): string
}

/** Starts one server before the tests of the enclosing file or describe block and closes it
 * after them. Without a `dataDir` it gets a fresh temporary one, removed afterwards. */
export function useServer(options: Partial<ServerConfig> = {}): LiveServer {
  let server: RingstreamServer | undefined
  let tempDir: string | undefined
  const live: LiveServer = {
    get url() {
      return server!.url
    },
    get server() {
      return server!
    },
    stream(path: string) {
      return `${server!.url}/v1/stream/${path}`
    },
  }
  beforeAll(async () => {
    if (options.dataDir === undefined) tempDir = mkdtempSync(join(tmpdir(), 'ringstream-test-'))
    server = createServer({ port: 0, longPollTimeoutMs: 500, durability: 'memory', http: testHttpBackend(), dataDir: tempDir, ...options })
    await server.listen()
  })
  afterAll(async () => {
    await server?.close()
    if (tempDir !== undefined) rmSync(tempDir, { recursive: true, force: true })
  })
  return live
}

let counter = 0
/** A stream name unique within this process run. */
export function uniqueName(prefix: string): string {
  counter += 1
  return `${prefix}-${process.pid}-${Date.now()}-${counter}`
}

/** The HTTP backend in-process test servers use: RINGSTREAM_HTTP as the command reads it
 * (so `RINGSTREAM_HTTP=node npx vitest run test/integration` runs spawned and in-process
 * servers alike on node:http), else auto. */
export function testHttpBackend(): HttpBackend {
  const chosen = process.env.RINGSTREAM_HTTP
  return chosen === 'node' || chosen === 'uws' ? chosen : 'auto'
}
