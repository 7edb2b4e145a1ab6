// Catch-up reads of streams larger than one piece (1 MiB): one response carries the whole
// stream up to readBytesMax, streamed piece by piece with backpressure, so the official
// client's one-shot read (live: false, exactly one GET) gets everything. Past the limit a
// response ends at a message boundary without Stream-Up-To-Date and the client pages.

import { gunzipSync } from 'node:zlib'
import * as net from 'node:net'
import { stream } from '@durable-streams/client'
import { expect, test } from 'vitest'
import { uniqueName } from '../helpers.js'
import { type ProtocolServer, inEveryClass } from '../protocol/servers.js'

async function create(server: ProtocolServer, contentType: string): Promise<string> {
  const name = uniqueName('large')
  expect((await fetch(server.stream(name), { method: 'PUT', headers: { 'Content-Type': contentType } })).status).toBe(201)
  return name
}

async function append(url: string, contentType: string, body: Uint8Array | string): Promise<void> {
  const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': contentType }, body })
  expect(res.status).toBe(204)
}

/** A JSON stream of `count` messages of about 150 bytes, appended 500 at a time. */
async function fillJson(server: ProtocolServer, count: number): Promise<{ name: string; messages: Array<{ i: number; text: string }> }> {
  const name = await create(server, 'application/json')
  const messages = Array.from({ length: count }, (_, i) => ({ i, text: `message ${i} `.padEnd(140, 'x') }))
  for (let at = 0; at < count; at += 500) await append(server.stream(name), 'application/json', JSON.stringify(messages.slice(at, at + 500)))
  return { name, messages }
}

inEveryClass('catch-up reads larger than one piece', (live) => {
  test('the official client with live: false gets all 10,000 messages of a 1.5 MB JSON stream in one request', async () => {
    const { name, messages } = await fillJson(live, 10_000)
    let requests = 0
    const counting: typeof fetch = (input, init) => {
      requests++
      return fetch(input, init)
    }
    const res = await stream<{ i: number; text: string }>({ url: live.stream(name), offset: '-1', live: false, json: true, fetch: counting })
    const read = await res.json()
    expect(read.length).toBe(10_000)
    expect(read).toEqual(messages)
    expect(requests).toBe(1)
  })

  test('a 5 MiB binary stream comes back whole, byte for byte, with Stream-Up-To-Date', async () => {
    const name = await create(live, 'application/octet-stream')
    const parts: Buffer[] = []
    for (let i = 0; i < 5; i++) {
      const part = Buffer.alloc(1024 * 1024 + 7 * i)
      for (let j = 0; j + 4 <= part.length; j += 4) part.writeUInt32LE((i * 1_000_003 + j) >>> 0, j)
      parts.push(part)
      await append(live.stream(name), 'application/octet-stream', part)
    }
    const content = Buffer.concat(parts)
    const res = await fetch(`${live.stream(name)}?offset=-1`)
    expect(res.status).toBe(200)
    expect(res.headers.get('stream-up-to-date')).toBe('true')
    expect(res.headers.get('stream-next-offset')).toBe(`0000000000000000_${String(content.length).padStart(16, '0')}`)
    expect(Buffer.from(await res.arrayBuffer()).equals(content)).toBe(true)
    // From the middle: the rest, whole.
    const from = 3 * 1024 * 1024 + 5
    const rest = await fetch(`${live.stream(name)}?offset=0000000000000000_${String(from).padStart(16, '0')}`)
    expect(Buffer.from(await rest.arrayBuffer()).equals(content.subarray(from))).toBe(true)
  })

  test('gzip: a large text stream is compressed on the fly and decompresses to the stream', async () => {
    const name = await create(live, 'text/plain')
    const lines = Array.from({ length: 90_000 }, (_, i) => `line ${i} of a long text stream\n`).join('')
    for (let at = 0; at < lines.length; at += 400_000) await append(live.stream(name), 'text/plain', lines.slice(at, at + 400_000))
    expect(lines.length).toBeGreaterThan(2 * 1024 * 1024)
    // node:http-level check of the raw body: fetch would decompress it silently.
    const raw = await rawGet(live.url, `/v1/stream/${name}?offset=-1`, { 'Accept-Encoding': 'gzip' })
    expect(raw.headers['content-encoding']).toBe('gzip')
    expect(raw.body.length).toBeLessThan(lines.length / 4)
    expect(gunzipSync(raw.body).toString()).toBe(lines)
  })

  test('a reader that does not read holds about one piece in the server, not the response; it then gets every byte', async () => {
    const name = await create(live, 'application/octet-stream')
    const piece = Buffer.alloc(8 * 1024 * 1024, 7)
    for (let i = 0; i < 12; i++) await append(live.stream(name), 'application/octet-stream', piece) // 96 MiB
    globalThis.gc?.()
    const before = process.memoryUsage().rss
    const { port } = new URL(live.url)
    const socket = net.connect({ port: Number(port), host: '127.0.0.1' })
    socket.pause()
    socket.write(`GET /v1/stream/${name}?offset=-1 HTTP/1.1\r\nHost: x\r\n\r\n`)
    await new Promise((resolve) => setTimeout(resolve, 500))
    // The server meanwhile answers others.
    expect((await fetch(`${live.stream(name)}?offset=now`)).status).toBe(200)
    const grown = process.memoryUsage().rss - before
    // One piece (1 MiB) plus what the sockets' buffers hold; the whole response would be 96 MiB.
    expect(grown).toBeLessThan(32 * 1024 * 1024)
    let received = 0
    await new Promise<void>((resolve, reject) => {
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length
        if (chunk.subarray(-5).toString() === '0\r\n\r\n') resolve()
      })
      socket.on('error', reject)
      socket.resume()
    })
    socket.destroy()
    // Head and chunk framing besides the 96 MiB body.
    expect(received).toBeGreaterThan(12 * piece.length)
    expect(received).toBeLessThan(12 * piece.length + 64 * 1024)
  })
})

inEveryClass(
  'catch-up reads past --read-bytes-max',
  (limited) => {
    test('past readBytesMax a response ends at a message boundary without Stream-Up-To-Date, and paging reads the rest', async () => {
      const { name, messages } = await fillJson(limited, 4_000)
      const first = await fetch(`${limited.stream(name)}?offset=-1`)
      expect(first.headers.get('stream-up-to-date')).toBeNull()
      const firstMessages = (await first.json()) as unknown[]
      expect(firstMessages.length).toBeGreaterThan(0)
      expect(firstMessages.length).toBeLessThan(messages.length)
      const all: unknown[] = []
      let offset = '-1'
      for (;;) {
        const page = await fetch(`${limited.stream(name)}?offset=${offset}`)
        const body = (await page.json()) as unknown[]
        expect(JSON.stringify(body).length).toBeLessThanOrEqual(256 * 1024 + 2)
        for (const message of body) all.push(message)
        offset = page.headers.get('stream-next-offset')!
        if (page.headers.get('stream-up-to-date') === 'true') break
      }
      expect(all).toEqual(messages)
    })
  },
  { readBytesMax: 256 * 1024 },
)

function rawGet(base: string, path: string, headers: Record<string, string>): Promise<{ headers: Record<string, string>; body: Buffer }> {
  return import('node:http').then(
    ({ request }) =>
      new Promise((resolve, reject) => {
        const url = new URL(base)
        const req = request({ host: url.hostname, port: url.port, path, headers }, (res) => {
          const chunks: Buffer[] = []
          res.on('data', (chunk: Buffer) => chunks.push(chunk))
          res.on('end', () => resolve({ headers: res.headers as Record<string, string>, body: Buffer.concat(chunks) }))
        })
        req.on('error', reject)
        req.end()
      }),
  )
}
