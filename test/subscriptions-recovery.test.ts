// Subscription state and the engine gaps closed with it, on the fault-injecting simulator:
// a DELETE whose WAL write fails leaves the stream as it was; subscription cursors, leases
// and wakes survive power cuts before, during and after a checkpoint; a sliding TTL renewed
// only by reads goes back by at most one checkpoint interval after a crash.

import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { SimIo } from '../src/io/sim.js'
import type { RingstreamServer } from '../src/index.js'
import { post, put, sleep, text, url, useSimServers } from './sim-server.js'

// The simulated disk cannot hold the signing key (it is written with node:fs): an
// operator's key file keeps tokens valid across the simulated restarts.
const keyFile = join(mkdtempSync(join(tmpdir(), 'ringstream-key-')), 'signing.pem')
writeFileSync(keyFile, generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }))
const boot = useSimServers({ longPollTimeoutMs: 200, webhookSigningKeyFile: keyFile })

async function call(server: RingstreamServer, path: string, method: string, body?: unknown, token?: string): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  const res = await fetch(url(server, path), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const raw = await res.text()
  return { status: res.status, body: raw === '' ? undefined : JSON.parse(raw) }
}

describe('DELETE and the WAL', () => {
  test('a DELETE whose WAL write fails leaves the stream readable and writable; a later one deletes it for good', async () => {
    const io = new SimIo()
    const server = await boot(io)
    await put(server, 'kept', { 'Content-Type': 'text/plain' }, 'still here;')
    io.failNext('writev', 'EIO')
    expect((await fetch(url(server, 'kept'), { method: 'DELETE' })).status).toBe(500)
    expect(await text(server, 'kept')).toBe('still here;')
    expect((await post(server, 'kept', 'and more;')).status).toBe(204)
    const disk = io.crashed()
    const crashed = await boot(disk)
    expect(await text(crashed, 'kept')).toBe('still here;and more;')
    expect((await fetch(url(crashed, 'kept'), { method: 'DELETE' })).status).toBe(204)
    expect((await fetch(url(crashed, 'kept'))).status).toBe(404)
    const after = await boot(disk.crashed())
    expect((await fetch(url(after, 'kept'))).status).toBe(404)
  })
})

describe('subscription state across power cuts', () => {
  test('acked cursors, the generation and a held lease come back from the WAL and from checkpoints', async () => {
    let io = new SimIo()
    let server = await boot(io)
    /** Power cut: the next server runs on what survived. */
    const cut = async (): Promise<RingstreamServer> => boot((io = io.crashed()))
    await put(server, 'wake', { 'Content-Type': 'application/json' }, '[]')
    expect((await call(server, '__ds/subscriptions/s', 'PUT', { type: 'pull-wake', pattern: 'jobs/*', wake_stream: 'wake', lease_ttl_ms: 60_000 })).status).toBe(201)
    await put(server, 'jobs/1', { 'Content-Type': 'text/plain' }, 'one;')
    const claim = await call(server, '__ds/subscriptions/s/claim', 'POST', { worker: 'w' })
    const tail = claim.body.streams[0].tail_offset as string
    const ack = { wake_id: claim.body.wake_id, generation: claim.body.generation, acks: [{ stream: 'jobs/1', offset: tail }], done: true }
    expect((await call(server, '__ds/subscriptions/s/ack', 'POST', ack, claim.body.token)).status).toBe(200)

    const expectAcked = async (at: RingstreamServer): Promise<void> => {
      const got = await call(at, '__ds/subscriptions/s', 'GET')
      expect(got.body.streams).toEqual([{ path: 'jobs/1', link_type: 'glob', acked_offset: tail }])
      expect(got.body.generation).toBe(claim.body.generation)
      expect((await call(at, '__ds/subscriptions/s/claim', 'POST', { worker: 'w2' })).body.error.code).toBe('NO_PENDING_WORK')
    }
    // Only in the WAL.
    server = await cut()
    await expectAcked(server)
    // In a checkpoint, the WAL segments covered by it retired.
    await server.checkpoint()
    server = await cut()
    await expectAcked(server)
    // A checkpoint that fails while writing the registry: the WAL still has everything.
    await post(server, 'jobs/1', 'two;')
    const held = await call(server, '__ds/subscriptions/s/claim', 'POST', { worker: 'holder' })
    expect(held.status).toBe(200)
    io.failNext('rename', 'EIO')
    await expect(server.checkpoint()).rejects.toThrow()
    server = await cut()
    const busy = await call(server, '__ds/subscriptions/s/claim', 'POST', { worker: 'other' })
    expect(busy).toMatchObject({ status: 409, body: { error: { code: 'ALREADY_CLAIMED', current_holder: 'holder', generation: held.body.generation } } })
    // The holder's token still works after the restart: the token key is the data directory's.
    const heartbeat = await call(server, '__ds/subscriptions/s/ack', 'POST', { wake_id: held.body.wake_id, generation: held.body.generation }, held.body.token)
    expect(heartbeat).toEqual({ status: 200, body: { ok: true, next_wake: false } })
  })

  test('a deleted subscription stays deleted, and one made again with its id starts afresh', async () => {
    let io = new SimIo()
    let server = await boot(io)
    const cut = async (): Promise<RingstreamServer> => boot((io = io.crashed()))
    await put(server, 'wake', { 'Content-Type': 'application/json' }, '[]')
    const config = { type: 'pull-wake', streams: ['solo'], wake_stream: 'wake' }
    await put(server, 'solo', { 'Content-Type': 'text/plain' }, 'old;')
    expect((await call(server, '__ds/subscriptions/again', 'PUT', config)).status).toBe(201)
    await post(server, 'solo', 'pending;')
    await server.checkpoint()
    expect((await call(server, '__ds/subscriptions/again', 'DELETE')).status).toBe(204)
    server = await cut()
    expect((await call(server, '__ds/subscriptions/again', 'GET')).status).toBe(404)
    expect((await call(server, '__ds/subscriptions/again', 'PUT', config)).status).toBe(201)
    server = await cut()
    const got = await call(server, '__ds/subscriptions/again', 'GET')
    expect(got.body.streams).toEqual([{ path: 'solo', link_type: 'explicit', acked_offset: '0000000000000000_0000000000000012' }])
    expect(got.body.generation).toBe(0)
  })

  test('an explicit link still wakes after a restart that replayed later records of its subscription', async () => {
    let io = new SimIo()
    let server = await boot(io)
    const cut = async (): Promise<RingstreamServer> => boot((io = io.crashed()))
    await put(server, 'wake', { 'Content-Type': 'application/json' }, '[]')
    await put(server, 'only', { 'Content-Type': 'text/plain' }, 'a;')
    expect((await call(server, '__ds/subscriptions/e', 'PUT', { type: 'pull-wake', streams: ['only'], wake_stream: 'wake' })).status).toBe(201)
    await post(server, 'only', 'b;')
    // A claim and an ack store the subscription again after its link.
    const first = await call(server, '__ds/subscriptions/e/claim', 'POST', { worker: 'w' })
    const acks = [{ stream: 'only', offset: first.body.streams[0].tail_offset }]
    expect((await call(server, '__ds/subscriptions/e/ack', 'POST', { wake_id: first.body.wake_id, generation: first.body.generation, acks, done: true }, first.body.token)).status).toBe(200)
    server = await cut()
    const tail = (await post(server, 'only', 'c;')).headers.get('stream-next-offset')
    const again = await call(server, '__ds/subscriptions/e/claim', 'POST', { worker: 'w' })
    expect(again.status).toBe(200)
    expect(again.body.streams).toEqual([expect.objectContaining({ path: 'only', link_type: 'explicit', tail_offset: tail, has_pending: true })])
  })
})

describe('sliding TTL after a crash', () => {
  test('a renewal by reads alone is kept by the next timed checkpoint', async () => {
    const io = new SimIo()
    const server = await boot(io, { checkpointIntervalMs: 200 })
    await put(server, 'ttl', { 'Content-Type': 'text/plain', 'Stream-TTL': '2' }, 'alive;')
    await sleep(1200)
    expect(await text(server, 'ttl')).toBe('alive;')
    // Several checkpoint intervals: the renewal has no WAL record, only checkpoints keep it.
    await sleep(500)
    const after = await boot(io.crashed())
    // Past the creation's expiry (2 s), within the renewal's (1.2 + 2 s).
    await sleep(600)
    expect(await text(after, 'ttl')).toBe('alive;')
  })
})
