// The HTTP backend choice, as a user meets it: --http node serves on node:http and says so in
// the startup line; auto takes uWebSockets.js where it loads (Node 20 here); a bad value is
// refused. The same protocol on node:http is the conformance suite's job
// (test/conformance-*-node.test.ts); under Node 24 on this machine's glibc 2.36 the
// fallback is exercised for real by .ci/run (test/node-versions.sh).

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { output, ringstream, startup, useChildren } from '../process.js'

const spawnChild = useChildren()
const dir = mkdtempSync(join(tmpdir(), 'ringstream-http-backend-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('--http', () => {
  test('--http node serves on node:http, says why in the startup line, and answers like uWS', async () => {
    const child = spawnChild(ringstream(['--port', '0', '--data-dir', join(dir, 'node'), '--http', 'node']))
    const { url, line } = await startup(child)
    expect(line).toContain('http=node:http (requested)')
    const stream = `${url}/v1/stream/backend/a`
    const created = await fetch(stream, { method: 'PUT', headers: { 'Content-Type': 'text/plain' } })
    expect(created.status).toBe(201)
    expect(created.headers.get('x-content-type-options')).toBe('nosniff')
    expect(created.headers.get('location')).toBe(stream)
    expect((await fetch(stream, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'hello' })).status).toBe(204)
    const read = await fetch(`${stream}?offset=-1`)
    expect(await read.text()).toBe('hello')
    expect(read.headers.get('stream-up-to-date')).toBe('true')
    const missing = await fetch(`${url}/v1/stream/backend/none`)
    expect(missing.status).toBe(404)
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('NOT_FOUND')
    const tooBig = await fetch(stream, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: new Uint8Array(16 * 1024 * 1024 + 1) })
    expect(tooBig.status).toBe(413)
    child.kill('SIGTERM')
    expect((await output(child)).code).toBe(0)
  })

  test('auto takes uWebSockets.js where it loads', async () => {
    const child = spawnChild(ringstream(['--port', '0', '--data-dir', join(dir, 'auto')]), { RINGSTREAM_HTTP: 'auto' })
    const { line } = await startup(child)
    expect(line).toMatch(/http=(uws-pack|@uwsjs\/\S+)\)/)
  })

  test('an unknown backend is refused at startup', async () => {
    const { code, stderr } = await output(spawnChild(ringstream(['--port', '0', '--http', 'fast'])))
    expect(code).toBe(1)
    expect(stderr).toContain('http must be auto, uws or node')
  })
})
