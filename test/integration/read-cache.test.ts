// Catch-up reads on a durable server served from several parts (read cache, staged bytes):
// the body is joined in one reused buffer that uWS must copy before the next response
// overwrites it. A reader that does not drain its socket makes uWS keep the unsent rest; a
// second response sent meanwhile reuses the buffer; the first reader must still get its own
// bytes. Also checks bytes across the data file / cache boundary with a tiny cache budget.

import { mkdtempSync, rmSync } from 'node:fs'
import * as net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { type RingstreamServer, createServer } from '../../src/index.js'

const dirs: string[] = []
const servers: RingstreamServer[] = []

afterAll(async () => {
  for (const server of servers) await server.close()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

async function start(readCacheBytes?: number): Promise<RingstreamServer> {
  // Responses of up to 8 MiB in one piece (one join): more than loopback TCP holds for a
  // reader that does not read.
  const dataDir = mkdtempSync(join(tmpdir(), 'ringstream-read-cache-'))
  dirs.push(dataDir)
  const server = createServer({ port: 0, durability: 'fsync', io: 'fs', dataDir, readBytesMax: 8 * 1024 * 1024, readChunkBytes: 8 * 1024 * 1024, ...(readCacheBytes === undefined ? {} : { readCacheBytes }) })
  servers.push(server)
  await server.listen()
  return server
}

/** Appends `count` distinct 64 KiB bodies (each its own part in the log); returns the whole content. */
async function fill(server: RingstreamServer, name: string, count: number): Promise<Buffer> {
  const url = `${server.url}/v1/stream/${name}`
  expect((await fetch(url, { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream' } })).status).toBe(201)
  const bodies: Buffer[] = []
  for (let i = 0; i < count; i++) {
    const body = Buffer.alloc(64 * 1024, `${name}:${i};`)
    bodies.push(body)
    expect((await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body })).status).toBe(204)
  }
  return Buffer.concat(bodies)
}

/** Sends a GET on a raw socket and reads nothing until `drain()` is called. */
function slowReader(server: RingstreamServer, path: string): { drain(): Promise<Buffer> } {
  const { port } = new URL(server.url)
  const socket = net.connect({ port: Number(port), host: '127.0.0.1' })
  socket.setNoDelay(true)
  socket.pause()
  socket.write(`GET /v1/stream/${path}?offset=-1 HTTP/1.1\r\nHost: x\r\n\r\n`)
  return {
    drain: () =>
      new Promise((resolve, reject) => {
        const chunks: Buffer[] = []
        socket.on('data', (chunk: Buffer) => {
          chunks.push(chunk)
          const all = Buffer.concat(chunks)
          const headEnd = all.indexOf('\r\n\r\n')
          if (headEnd < 0) return
          const length = Number(/content-length: (\d+)/i.exec(all.subarray(0, headEnd).toString())?.[1])
          if (all.length >= headEnd + 4 + length) {
            socket.destroy()
            resolve(all.subarray(headEnd + 4, headEnd + 4 + length))
          }
        })
        socket.on('error', reject)
        socket.resume()
      }),
  }
}

describe('catch-up reads joined from several parts', () => {
  test('a congested reader keeps its own bytes while later responses reuse the join buffer', async () => {
    const server = await start()
    const a = await fill(server, 'a', 100) // 6.4 MB, sent as one response
    const b = await fill(server, 'b', 110) // longer than a: its joins overwrite all of a's
    const reader = slowReader(server, 'a')
    await new Promise((resolve) => setTimeout(resolve, 200))
    // Meanwhile: other multi-part responses, each joined in the same buffer.
    for (let i = 0; i < 3; i++) expect(Buffer.from(await (await fetch(`${server.url}/v1/stream/b?offset=-1`)).arrayBuffer()).equals(b)).toBe(true)
    const received = await reader.drain()
    expect(received.length).toBe(a.length)
    expect(received.equals(a)).toBe(true)
  })

  test('with a small cache, reads spanning the data file and the cache are whole', async () => {
    const server = await start(128 * 1024)
    const content = await fill(server, 'c', 8)
    await server.checkpoint() // writes every staged byte to the data file
    for (const from of [0, 100_000, 300_000, 400_000, content.length - 10]) {
      const res = await fetch(`${server.url}/v1/stream/c?offset=${String(0).padStart(16, '0')}_${String(from).padStart(16, '0')}`)
      expect(res.status).toBe(200)
      expect(Buffer.from(await res.arrayBuffer()).equals(content.subarray(from))).toBe(true)
    }
  })

  test('with no cache, concurrent file reads (pooled buffers) and fork reads across files stay whole', async () => {
    const server = await start(0)
    const names = ['p0', 'p1', 'p2', 'p3', 'p4', 'p5']
    const contents = new Map<string, Buffer>()
    for (const name of names) contents.set(name, await fill(server, name, 3))
    const forkUrl = `${server.url}/v1/stream/p0-fork`
    expect((await fetch(forkUrl, { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream', 'Stream-Forked-From': '/v1/stream/p0' } })).status).toBe(201)
    const forkTail = Buffer.alloc(64 * 1024, 'fork;')
    expect((await fetch(forkUrl, { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body: forkTail })).status).toBe(204)
    contents.set('p0-fork', Buffer.concat([contents.get('p0')!, forkTail]))
    await server.checkpoint() // every byte in data files: each read below is a file read
    for (let round = 0; round < 5; round++) {
      const bodies = await Promise.all([...contents.keys()].map(async (name) => Buffer.from(await (await fetch(`${server.url}/v1/stream/${name}?offset=-1`)).arrayBuffer())))
      ;[...contents.values()].forEach((expected, i) => expect(bodies[i]!.equals(expected)).toBe(true))
    }
  })

  test('gzipped responses of file reads are compressed from bytes of their own', async () => {
    // zlib compresses on the thread pool, after the pooled read buffer went back to the pool.
    const server = await start(0)
    const names = ['g0', 'g1', 'g2', 'g3', 'g4', 'g5', 'g6', 'g7']
    const contents = new Map<string, string>()
    for (const name of names) {
      const url = `${server.url}/v1/stream/${name}`
      expect((await fetch(url, { method: 'PUT', headers: { 'Content-Type': 'text/plain' } })).status).toBe(201)
      const body = Array.from({ length: 4000 }, (_, i) => `${name}-${i};`).join('')
      expect((await fetch(url, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body })).status).toBe(204)
      contents.set(name, body)
    }
    await server.checkpoint()
    const read = (name: string, gzip: boolean): Promise<Response> => fetch(`${server.url}/v1/stream/${name}?offset=-1`, { headers: { 'Accept-Encoding': gzip ? 'gzip' : 'identity' } })
    for (let round = 0; round < 10; round++) {
      // Gzipped reads of half the streams while plain reads of the others keep reusing the pool.
      const zipped = names.slice(0, 4).map((name) => read(name, true))
      const plain = Array.from({ length: 40 }, (_, i) => read(names[4 + (i % 4)]!, false))
      for (const [i, res] of (await Promise.all(zipped)).entries()) {
        expect(res.headers.get('content-encoding')).toBe('gzip')
        expect(await res.text()).toBe(contents.get(names[i]!))
      }
      for (const [i, res] of (await Promise.all(plain)).entries()) expect(await res.text()).toBe(contents.get(names[4 + (i % 4)]!))
    }
  })
})
