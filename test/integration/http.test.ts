// Integration: HTTP-level behaviour the conformance suite does not pin down — limits,
// path validation, CORS, gzip, caching headers, errors as JSON, and reads across chunks.

import { request } from 'node:http'
import { gunzipSync } from 'node:zlib'
import { describe, expect, test } from 'vitest'
import { uniqueName, useServer } from '../helpers.js'

const APPEND_BYTES_MAX = 64 * 1024
const READ_BYTES_MAX = 4096
const live = useServer({ appendBytesMax: APPEND_BYTES_MAX, readBytesMax: READ_BYTES_MAX, gzipMinBytes: 1024 })

async function put(path: string, contentType: string, body?: string): Promise<Response> {
  return fetch(live.stream(path), { method: 'PUT', headers: { 'Content-Type': contentType }, body })
}

/** PUT through node:http, which sends the path as written (fetch would normalise dot segments). */
function rawPut(path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const url = new URL(live.url)
    const req = request({ host: url.hostname, port: url.port, method: 'PUT', path, headers: { 'Content-Type': 'text/plain' } }, (res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => (body += chunk.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

async function errorCode(res: Response): Promise<string> {
  const body = (await res.json()) as { error: { code: string; message: string } }
  expect(body.error.message.length).toBeGreaterThan(0)
  return body.error.code
}

describe('limits and validation', () => {
  test('an append larger than appendBytesMax is refused with 413 and nothing is stored', async () => {
    const name = uniqueName('big')
    await put(name, 'application/octet-stream')
    const res = await fetch(live.stream(name), {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: new Uint8Array(APPEND_BYTES_MAX + 1),
    })
    expect(res.status).toBe(413)
    expect(await errorCode(res)).toBe('PAYLOAD_TOO_LARGE')
    const head = await fetch(live.stream(name), { method: 'HEAD' })
    expect(head.headers.get('stream-next-offset')).toBe('0000000000000000_0000000000000000')
  })

  test('an append of exactly appendBytesMax is accepted', async () => {
    const name = uniqueName('edge')
    await put(name, 'application/octet-stream')
    const res = await fetch(live.stream(name), {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: new Uint8Array(APPEND_BYTES_MAX),
    })
    expect(res.status).toBe(204)
  })

  test.each([
    ['%2e%2e/escape', 'INVALID_PATH'],
    ['a/%2E%2E/b', 'INVALID_PATH'],
    ['a//b', 'INVALID_PATH'],
    ['a/%00b', 'INVALID_PATH'],
    ['a%0Ab', 'INVALID_PATH'],
    ['bad%ZZ', 'INVALID_PATH'],
    ['x'.repeat(2000), 'INVALID_PATH'],
    ['__ds', 'RESERVED_PATH'],
  ])('path %s is refused with 400 %s', async (path, code) => {
    const res = await rawPut(`/v1/stream/${path}`)
    expect(res.status).toBe(400)
    expect((JSON.parse(res.body) as { error: { code: string } }).error.code).toBe(code)
  })

  test('paths under __ds/ are control routes, never streams', async () => {
    const notJson = await rawPut('/v1/stream/__ds/subscriptions/x')
    expect(notJson.status).toBe(400)
    const unknown = await rawPut('/v1/stream/__ds/anything')
    expect(unknown.status).toBe(404)
    expect((JSON.parse(unknown.body) as { error: { code: string } }).error.code).toBe('SUBSCRIPTION_NOT_FOUND')
    expect((await fetch(live.stream('__ds/anything'))).status).toBe(404)
  })

  test('nested paths with slashes are ordinary streams', async () => {
    const name = `${uniqueName('tenant')}/chats/42`
    expect((await put(name, 'text/plain', 'hi')).status).toBe(201)
    expect(await (await fetch(live.stream(name))).text()).toBe('hi')
  })

  test('unknown methods get 405 with an Allow header', async () => {
    const res = await fetch(live.stream(uniqueName('m')), { method: 'PATCH' })
    expect(res.status).toBe(405)
    expect(res.headers.get('allow')).toContain('POST')
  })

  test('routes outside /v1/stream/ are 404 with a JSON error', async () => {
    const res = await fetch(`${live.url}/nope`)
    expect(res.status).toBe(404)
    expect(await errorCode(res)).toBe('NOT_FOUND')
  })

  test('an offset beyond the tail is a 400, not an empty read', async () => {
    const name = uniqueName('beyond')
    await put(name, 'text/plain', 'abc')
    const res = await fetch(`${live.stream(name)}?offset=0000000000000000_0000000000000004`)
    expect(res.status).toBe(400)
    expect(await errorCode(res)).toBe('INVALID_OFFSET')
  })

  test('a JSON offset inside a message is refused', async () => {
    const name = uniqueName('json-mid')
    await put(name, 'application/json', '[{"a":1},{"b":2}]')
    const res = await fetch(`${live.stream(name)}?offset=0000000000000000_0000000000000003`)
    expect(res.status).toBe(400)
  })
})

describe('reads', () => {
  test('catch-up reads are chunked at readBytesMax and reassemble exactly', async () => {
    const name = uniqueName('chunks')
    const data = new Uint8Array(READ_BYTES_MAX * 3 + 17).map((_, i) => i % 251)
    await fetch(live.stream(name), { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream' }, body: data })
    const got: number[] = []
    let offset = '-1'
    let responses = 0
    for (;;) {
      const res = await fetch(`${live.stream(name)}?offset=${offset}`, { headers: { 'Accept-Encoding': 'identity' } })
      const body = new Uint8Array(await res.arrayBuffer())
      responses++
      expect(body.length).toBeLessThanOrEqual(READ_BYTES_MAX)
      got.push(...body)
      offset = res.headers.get('stream-next-offset')!
      if (res.headers.get('stream-up-to-date') === 'true') break
      expect(res.headers.get('cache-control')).toContain('max-age=60')
    }
    expect(responses).toBe(4)
    expect(new Uint8Array(got)).toEqual(data)
  })

  test('JSON chunks end on message boundaries and each is a valid array', async () => {
    const name = uniqueName('json-chunks')
    const messages = Array.from({ length: 60 }, (_, i) => ({ i, pad: 'x'.repeat(150) }))
    await put(name, 'application/json', JSON.stringify(messages))
    const got: unknown[] = []
    let offset = '-1'
    for (let guard = 0; guard < 100; guard++) {
      const res = await fetch(`${live.stream(name)}?offset=${offset}`)
      got.push(...((await res.json()) as unknown[]))
      offset = res.headers.get('stream-next-offset')!
      if (res.headers.get('stream-up-to-date') === 'true') break
    }
    expect(got).toEqual(messages)
  })

  test('large text responses are gzipped when accepted', async () => {
    const name = uniqueName('gzip')
    const text = 'durable streams '.repeat(200)
    await put(name, 'text/plain', text)
    const res = await fetch(live.stream(name), { headers: { 'Accept-Encoding': 'gzip' } })
    expect(res.headers.get('content-encoding')).toBe('gzip')
    expect(await res.text()).toBe(text)
    const raw = await new Promise<Buffer>((resolve, reject) => {
      import('node:http').then(({ get }) => {
        get(live.stream(name), { headers: { 'Accept-Encoding': 'gzip' } }, (msg) => {
          const chunks: Buffer[] = []
          msg.on('data', (c: Buffer) => chunks.push(c))
          msg.on('end', () => resolve(Buffer.concat(chunks)))
        }).on('error', reject)
      }, reject)
    })
    expect(raw.length).toBeLessThan(text.length)
    expect(gunzipSync(raw).toString()).toBe(text)
  })

  test('small responses and clients without gzip get identity bodies', async () => {
    const name = uniqueName('identity')
    await put(name, 'text/plain', 'short')
    const res = await fetch(live.stream(name), { headers: { 'Accept-Encoding': 'identity' } })
    expect(res.headers.get('content-encoding')).toBeNull()
    expect(await res.text()).toBe('short')
  })

  test('ETag varies with closure', async () => {
    const name = uniqueName('etag-close')
    await put(name, 'text/plain', 'data')
    const open = await fetch(live.stream(name))
    await fetch(live.stream(name), { method: 'POST', headers: { 'Stream-Closed': 'true' } })
    const closed = await fetch(live.stream(name), { headers: { 'If-None-Match': open.headers.get('etag')! } })
    expect(closed.status).toBe(200)
    expect(closed.headers.get('etag')).not.toBe(open.headers.get('etag'))
    expect(closed.headers.get('stream-closed')).toBe('true')
  })

  test('a long-poll waiting on a deleted stream is answered 404', async () => {
    const name = uniqueName('lp-delete')
    const created = await put(name, 'text/plain')
    const tail = created.headers.get('stream-next-offset')!
    const pending = fetch(`${live.stream(name)}?offset=${tail}&live=long-poll`)
    await new Promise((r) => setTimeout(r, 50))
    await fetch(live.stream(name), { method: 'DELETE' })
    expect((await pending).status).toBe(404)
  })
})

describe('CORS and browser headers', () => {
  test('preflight allows the protocol request headers', async () => {
    const res = await fetch(live.stream('anything'), {
      method: 'OPTIONS',
      headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'producer-id,stream-seq' },
    })
    expect(res.status).toBe(204)
    const allowed = res.headers.get('access-control-allow-headers')!.toLowerCase()
    for (const header of ['content-type', 'producer-id', 'producer-epoch', 'producer-seq', 'stream-seq', 'stream-closed', 'if-none-match']) {
      expect(allowed).toContain(header)
    }
    expect(res.headers.get('access-control-allow-methods')).toContain('DELETE')
  })

  test('responses expose the protocol response headers to browsers', async () => {
    const name = uniqueName('cors')
    const res = await put(name, 'text/plain')
    expect(res.headers.get('access-control-allow-origin')).toBe('*')
    const exposed = res.headers.get('access-control-expose-headers')!.toLowerCase()
    for (const header of ['stream-next-offset', 'stream-cursor', 'stream-up-to-date', 'stream-closed', 'producer-epoch', 'etag']) {
      expect(exposed).toContain(header)
    }
    expect(res.headers.get('cross-origin-resource-policy')).toBe('cross-origin')
  })
})
