// test/sim-server.ts — real servers (HTTP and all) on the fault-injecting simulator for a
// test file, closed after each test, and the small HTTP helpers those tests share.

import { afterEach, expect } from 'vitest'
import type { SimIo } from '../src/io/sim.js'
import { type RingstreamServer, type ServerConfig, createServer } from '../src/index.js'

export const DATA = '/data'

/** boot(io, options) starts a server on `io` (data in DATA); every one is closed after each test. */
export function useSimServers(defaults: Partial<ServerConfig>): (io: SimIo, options?: Partial<ServerConfig>) => Promise<RingstreamServer> {
  const servers: RingstreamServer[] = []
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.close().catch(() => {})
  })
  return async (io, options = {}) => {
    const server = createServer({ port: 0, dataDir: DATA, durability: 'fsync', walSegmentBytes: 256 * 1024, appendBytesMax: 64 * 1024, ...defaults, ...options }, { io })
    servers.push(server)
    await server.listen()
    return server
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

export function url(server: RingstreamServer, path: string): string {
  return `${server.url}/v1/stream/${path}`
}

export async function put(server: RingstreamServer, path: string, headers: Record<string, string> = { 'Content-Type': 'text/plain' }, body?: string): Promise<Response> {
  return fetch(url(server, path), { method: 'PUT', headers, body })
}

export async function post(server: RingstreamServer, path: string, body: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url(server, path), { method: 'POST', headers: { 'Content-Type': 'text/plain', ...headers }, body })
}

/** The whole stream as text (one read: these tests' streams are small). */
export async function text(server: RingstreamServer, path: string): Promise<string> {
  const res = await fetch(url(server, path))
  expect(res.status).toBe(200)
  return res.text()
}
