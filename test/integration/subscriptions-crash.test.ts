// Subscriptions across SIGKILL (fsync class, the real `ringstream` command): an ack that
// was answered is never redelivered, unacked work is, and nothing appended before the kill
// is missed, both for a pull-wake subscription (claims) and a webhook one (a real receiver
// that verifies signatures: the signing key survives the restart). State is first only in
// the WAL (no checkpoint yet), then in the registry store after a graceful restart, then
// killed again.

import { type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, test } from 'vitest'
import { ringstream, startup, useChildren } from '../process.js'
import { RECEIVER, eventually, freePort, jsonLines } from '../subscriptions/children.js'

const dataDir = mkdtempSync(join(tmpdir(), 'ringstream-subscriptions-crash-'))
afterAll(() => rmSync(dataDir, { recursive: true, force: true }))
const spawnChild = useChildren()
const LEASE_TTL_MS = 1500

let port = 0
let base = ''
const stream = (path: string): string => `${base}/v1/stream/${path}`
const sub = (id: string, action = ''): string => stream(`__ds/subscriptions/${id}${action === '' ? '' : `/${action}`}`)

async function start(): Promise<ChildProcess> {
  // A long checkpoint interval: until a graceful stop, state is only in the WAL.
  const child = spawnChild(ringstream(['--port', String(port), '--data-dir', dataDir, '--durability', 'fsync', '--webhooks', '--checkpoint-interval-ms', '600000']))
  base = (await startup(child)).url
  return child
}

async function stop(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  const exited = once(child, 'exit')
  child.kill(signal)
  await exited
}

async function call(url: string, method: string, body?: unknown, token?: string): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await res.text()
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) }
}

async function append(path: string, event: string): Promise<string> {
  const res = await fetch(stream(path), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ event }) })
  expect(res.status).toBe(204)
  return res.headers.get('stream-next-offset')!
}

/** Claims once the lease of a worker that died has run out. */
async function claimWhenFree(worker: string): Promise<any> {
  return eventually(async () => {
    const res = await call(sub('pull', 'claim'), 'POST', { worker })
    if (res.status === 409 && res.body.error.code === 'ALREADY_CLAIMED') return undefined
    return res
  }, 'the lease to end', 10_000)
}

function pending(streams: Array<{ path: string; tail_offset: string; has_pending: boolean }>): Record<string, string> {
  return Object.fromEntries(streams.filter((each) => each.has_pending).map((each) => [each.path, each.tail_offset]))
}

interface Receiver {
  readonly child: ChildProcess
  readonly lines: ReturnType<typeof jsonLines>
}

test('acked wakes stay acked, unacked ones come back, nothing before the kill is missed', { timeout: 90_000 }, async () => {
  port = await freePort()
  const hookPort = await freePort()
  let server = await start()
  const receiver = async (): Promise<Receiver> => {
    const child = spawnChild([process.execPath, RECEIVER, '--port', String(hookPort), '--jwks', stream('__ds/jwks.json'), '--mode', 'callback'])
    const lines = jsonLines(child)
    await lines.next((line) => line.listening !== undefined)
    return { child, lines }
  }
  /** The next wake listing `path`, after its callback acked it (the ack acknowledged). */
  const wakeWith = async (hook: Receiver, path: string): Promise<any> => {
    const wake = await hook.lines.next((line) => line.body?.streams?.some((s: any) => s.path === path && s.has_pending))
    expect(wake.verified).toBe(true)
    expect(await hook.lines.next((line) => line.generation === wake.body.generation)).toMatchObject({ callback: 200, answer: { ok: true } })
    return wake
  }
  let hook = await receiver()

  expect((await fetch(stream('wake/pool'), { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '[]' })).status).toBe(201)
  expect((await call(sub('pull'), 'PUT', { type: 'pull-wake', pattern: 'events/*', wake_stream: 'wake/pool', lease_ttl_ms: LEASE_TTL_MS })).status).toBe(201)
  const created = await call(sub('hook'), 'PUT', { type: 'webhook', pattern: 'events/*', webhook: { url: `http://127.0.0.1:${hookPort}/` }, lease_ttl_ms: LEASE_TTL_MS })
  expect(created.status).toBe(201)
  const kid = created.body.webhook.signing.kid as string

  // events/a: acked by both, the acks acknowledged, before the kill.
  for (const name of 'abcde') expect((await fetch(stream(`events/${name}`), { method: 'PUT', headers: { 'content-type': 'application/json' } })).status).toBe(201)
  const tailA = await append('events/a', 'a1')
  await wakeWith(hook, 'events/a')
  const claimA = await call(sub('pull', 'claim'), 'POST', { worker: 'w1' })
  expect(pending(claimA.body.streams)).toEqual({ 'events/a': tailA })
  const ackA = await call(sub('pull', 'ack'), 'POST', { wake_id: claimA.body.wake_id, generation: claimA.body.generation, acks: [{ stream: 'events/a', offset: tailA }], done: true }, claimA.body.token)
  expect(ackA).toEqual({ status: 200, body: { ok: true, next_wake: false } })

  // The receiver goes down; events/b is claimed by a worker that never acks; events/c comes after.
  await stop(hook.child, 'SIGKILL')
  const tailB = await append('events/b', 'b1')
  const claimB = await call(sub('pull', 'claim'), 'POST', { worker: 'w-dies' })
  expect(pending(claimB.body.streams)).toEqual({ 'events/b': tailB })
  const tailC = await append('events/c', 'c1')
  await stop(server, 'SIGKILL')

  server = await start()
  hook = await receiver()
  // The wake in flight at the kill comes again (b); c comes with it or in the next one.
  const redelivered = await wakeWith(hook, 'events/b')
  expect(redelivered.kid).toBe(kid)
  const wakeC = await wakeWith(hook, 'events/c')
  expect({ ...pending(redelivered.body.streams), ...pending(wakeC.body.streams) }).toEqual({ 'events/b': tailB, 'events/c': tailC })
  expect(hook.lines.seen.some((line) => line.body?.streams?.some((s: any) => s.path === 'events/a' && s.has_pending))).toBe(false)
  const claimBC = await claimWhenFree('w2')
  expect(claimBC.status).toBe(200)
  expect(claimBC.body.generation).toBeGreaterThan(claimB.body.generation)
  expect(pending(claimBC.body.streams)).toEqual({ 'events/b': tailB, 'events/c': tailC })
  const acks = [{ stream: 'events/b', offset: tailB }, { stream: 'events/c', offset: tailC }]
  const ackBC = await call(sub('pull', 'ack'), 'POST', { wake_id: claimBC.body.wake_id, generation: claimBC.body.generation, acks, done: true }, claimBC.body.token)
  expect(ackBC).toEqual({ status: 200, body: { ok: true, next_wake: false } })

  // A graceful restart stores everything in the registry; then events/d is acked and killed.
  await stop(server, 'SIGTERM')
  server = await start()
  for (const id of ['pull', 'hook']) {
    const got = await call(sub(id), 'GET')
    expect(Object.fromEntries(got.body.streams.map((s: any) => [s.path, s.acked_offset]))).toEqual({ 'events/a': tailA, 'events/b': tailB, 'events/c': tailC, 'events/d': '-1', 'events/e': '-1' })
  }
  expect((await call(sub('pull', 'claim'), 'POST', { worker: 'w3' })).body.error.code).toBe('NO_PENDING_WORK')
  const tailD = await append('events/d', 'd1')
  await wakeWith(hook, 'events/d')
  const claimD = await call(sub('pull', 'claim'), 'POST', { worker: 'w3' })
  expect(pending(claimD.body.streams)).toEqual({ 'events/d': tailD })
  const ackD = await call(sub('pull', 'ack'), 'POST', { wake_id: claimD.body.wake_id, generation: claimD.body.generation, acks: [{ stream: 'events/d', offset: tailD }], done: true }, claimD.body.token)
  expect(ackD.status).toBe(200)
  await stop(server, 'SIGKILL')

  // After the kill, the next wakes list only what came after: nothing acked comes back.
  server = await start()
  const tailE = await append('events/e', 'e1')
  const wakeE = await wakeWith(hook, 'events/e')
  expect(pending(wakeE.body.streams)).toEqual({ 'events/e': tailE })
  expect(hook.lines.seen.filter((line) => line.body?.streams?.some((s: any) => s.path === 'events/d' && s.has_pending))).toHaveLength(1)
  const claimE = await call(sub('pull', 'claim'), 'POST', { worker: 'w4' })
  expect(pending(claimE.body.streams)).toEqual({ 'events/e': tailE })
  await stop(server, 'SIGTERM')
})
