// PROTOCOL §4.1 (the Stream-Closed header's values) and §5.2 (error precedence when an
// append is refused for more than one reason), against a real server in every class.

import { expect, test } from 'vitest'
import { uniqueName } from '../helpers.js'
import { inEveryClass } from './servers.js'

const ZERO = '0000000000000000_0000000000000000'

inEveryClass('Stream-Closed values and closed-stream precedence', (server) => {
  async function create(contentType: string, closed = false): Promise<string> {
    const name = uniqueName('closure')
    const res = await fetch(server.stream(name), { method: 'PUT', headers: { 'Content-Type': contentType, ...(closed ? { 'Stream-Closed': 'true' } : {}) } })
    expect(res.status).toBe(201)
    return name
  }

  async function read(name: string): Promise<{ body: string; closed: string | null; next: string | null }> {
    const res = await fetch(`${server.stream(name)}?offset=-1`)
    expect(res.status).toBe(200)
    return { body: await res.text(), closed: res.headers.get('stream-closed'), next: res.headers.get('stream-next-offset') }
  }

  // §4.1: "Other values such as false, yes, 1, or empty string MUST be treated as if the
  // header were absent. Servers SHOULD NOT return error responses for non-true values."
  test.each(['yes', '1', '0', 'no', 't', 'tru', 'trueX', 'false', 'FALSE', 'on', '"true"'])('POST with Stream-Closed: %j appends and leaves the stream open', async (value) => {
    const name = await create('text/plain')
    const res = await fetch(server.stream(name), { method: 'POST', headers: { 'Content-Type': 'text/plain', 'Stream-Closed': value }, body: 'abc' })
    expect(res.status).toBe(204)
    expect(res.headers.get('stream-closed')).toBeNull()
    const after = await read(name)
    expect(after.body).toBe('abc')
    expect(after.closed).toBeNull()
    // Still open: another append lands.
    const more = await fetch(server.stream(name), { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'd' })
    expect(more.status).toBe(204)
  })

  test('PUT with Stream-Closed: yes creates an open stream', async () => {
    const name = uniqueName('closure-put')
    const res = await fetch(server.stream(name), { method: 'PUT', headers: { 'Content-Type': 'text/plain', 'Stream-Closed': 'yes' } })
    expect(res.status).toBe(201)
    expect(res.headers.get('stream-closed')).toBeNull()
    const append = await fetch(server.stream(name), { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'x' })
    expect(append.status).toBe(204)
  })

  test.each(['true', 'TRUE', 'True'])('Stream-Closed: %j closes', async (value) => {
    const name = await create('text/plain')
    const res = await fetch(server.stream(name), { method: 'POST', headers: { 'Stream-Closed': value } })
    expect(res.status).toBe(204)
    expect(res.headers.get('stream-closed')).toBe('true')
  })

  // §5.2 error precedence: "1. Stream closed → 409 Conflict with Stream-Closed: true;
  // 2. Content type mismatch → 409 Conflict; 3. Sequence regression → 409 Conflict".
  test('a closed stream answers an append of another content type 409 with Stream-Closed: true and its final offset', async () => {
    const name = await create('text/plain')
    await fetch(server.stream(name), { method: 'POST', headers: { 'Content-Type': 'text/plain', 'Stream-Closed': 'true' }, body: 'final' })
    const res = await fetch(server.stream(name), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"a":1}' })
    expect(res.status).toBe(409)
    expect(res.headers.get('stream-closed')).toBe('true')
    expect(res.headers.get('stream-next-offset')).toBe('0000000000000000_0000000000000005')
    expect((await read(name)).body).toBe('final')
  })

  test('a closed stream answers an append with a regressed Stream-Seq 409 with Stream-Closed: true', async () => {
    const name = await create('text/plain')
    await fetch(server.stream(name), { method: 'POST', headers: { 'Content-Type': 'text/plain', 'Stream-Seq': 'b' }, body: 'x' })
    await fetch(server.stream(name), { method: 'POST', headers: { 'Stream-Closed': 'true' } })
    const res = await fetch(server.stream(name), { method: 'POST', headers: { 'Content-Type': 'application/json', 'Stream-Seq': 'a' }, body: '1' })
    expect(res.status).toBe(409)
    expect(res.headers.get('stream-closed')).toBe('true')
  })

  test('an open stream answers a content type mismatch with a regressed Stream-Seq as a content type conflict, without Stream-Closed', async () => {
    const name = await create('text/plain')
    await fetch(server.stream(name), { method: 'POST', headers: { 'Content-Type': 'text/plain', 'Stream-Seq': 'b' }, body: 'x' })
    const res = await fetch(server.stream(name), { method: 'POST', headers: { 'Content-Type': 'application/json', 'Stream-Seq': 'a' }, body: '1' })
    expect(res.status).toBe(409)
    expect(res.headers.get('stream-closed')).toBeNull()
    const body = (await res.json()) as { error: { code: string } }
    expect(body.error.code).toBe('CONTENT_TYPE_MISMATCH')
  })

  test('a malformed append (a body without Content-Type) is 400 even on a closed stream: the request is wrong whatever the stream', async () => {
    const name = await create('text/plain', true)
    const res = await fetch(server.stream(name), { method: 'POST', body: new Uint8Array([1, 2]) })
    expect(res.status).toBe(400)
  })

  test('a stream created closed refuses appends of any content type with Stream-Closed: true', async () => {
    const name = await create('application/json', true)
    for (const contentType of ['application/json', 'text/plain']) {
      const res = await fetch(server.stream(name), { method: 'POST', headers: { 'Content-Type': contentType }, body: '[1]' })
      expect(res.status).toBe(409)
      expect(res.headers.get('stream-closed')).toBe('true')
      expect(res.headers.get('stream-next-offset')).toBe(ZERO)
    }
  })
})
