// Subscriptions with real receivers and workers: webhook receiver processes that verify
// signatures against the published JWK Set (one acking by callback, one that hangs, one
// that is down and comes back), and pull-wake worker processes that follow the wake stream
// with the official client, claim, crash holding the lease, and ack.

import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { uniqueName, useServer } from '../helpers.js'
import { useChildren } from '../process.js'
import { RECEIVER, WORKER, eventually, freePort, jsonLines } from '../subscriptions/children.js'

const dataDir = mkdtempSync(join(tmpdir(), 'ringstream-subscriptions-'))
afterAll(() => rmSync(dataDir, { recursive: true, force: true }))
const live = useServer({ durability: 'fsync', io: 'fs', dataDir, webhooks: true, webhookTimeoutMs: 1000 })
const spawnChild = useChildren()

const require = createRequire(import.meta.url)
const parseMetrics = require('parse-prometheus-text-format') as (text: string) => Array<{ name: string; metrics: Array<{ value?: string }> }>

const subUrl = (id: string): string => live.stream(`__ds/subscriptions/${id}`)

async function json(url: string, method: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { method, headers: { 'content-type': 'application/json', ...headers }, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await res.text()
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) }
}

function receiver(mode: string, port = 0): ReturnType<typeof jsonLines> {
  return jsonLines(spawnChild([process.execPath, RECEIVER, '--port', String(port), '--jwks', live.stream('__ds/jwks.json'), '--mode', mode]))
}

async function webhookSubscription(id: string, pattern: string, url: string): Promise<any> {
  const created = await json(subUrl(id), 'PUT', { type: 'webhook', pattern, webhook: { url }, lease_ttl_ms: 5000 })
  expect(created.status).toBe(201)
  return created.body
}

async function ackedOffset(id: string, path: string): Promise<string | undefined> {
  const got = await json(subUrl(id), 'GET')
  return got.body.streams.find((stream: { path: string }) => stream.path === path)?.acked_offset
}

describe('webhook receivers', () => {
  test('a receiver verifies every wake against the JWK Set and acks by callback; the next wake has a new generation', async () => {
    const hook = receiver('callback')
    const { listening } = await hook.next((line) => line.listening !== undefined)
    const prefix = uniqueName('hooks')
    const created = await webhookSubscription(uniqueName('sub'), `${prefix}/*`, `http://127.0.0.1:${listening}/hook`)
    const id = created.id as string
    const path = `${prefix}/a`
    const put = await fetch(live.stream(path), { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"n":1}' })
    const tail = put.headers.get('stream-next-offset')
    const first = await hook.next((line) => line.body?.subscription_id === id)
    expect(first.verified).toBe(true)
    expect(first.kid).toBe(created.webhook.signing.kid)
    expect(first.body.streams).toEqual([expect.objectContaining({ path, tail_offset: tail, has_pending: true, link_type: 'glob' })])
    const callback = await hook.next((line) => line.callback !== undefined)
    expect(callback).toMatchObject({ callback: 200, answer: { ok: true, next_wake: false } })
    expect(await ackedOffset(id, path)).toBe(tail)

    const second = await fetch(live.stream(path), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"n":2}' })
    const wake = await hook.next((line) => line.body?.subscription_id === id && line.body.generation > first.body.generation)
    expect(wake.verified).toBe(true)
    expect(wake.body.streams[0]).toMatchObject({ acked_offset: tail, tail_offset: second.headers.get('stream-next-offset') })
    await hook.next((line) => line.callback !== undefined && line.generation === wake.body.generation)
    expect(await ackedOffset(id, path)).toBe(second.headers.get('stream-next-offset'))
  })

  test('a receiver that never answers holds up neither appends nor another receiver', async () => {
    const slow = receiver('hang')
    const fast = receiver('done')
    const slowPort = (await slow.next((line) => line.listening !== undefined)).listening
    const fastPort = (await fast.next((line) => line.listening !== undefined)).listening
    const prefix = uniqueName('shared')
    const slowSub = (await webhookSubscription(uniqueName('slow'), `${prefix}/*`, `http://127.0.0.1:${slowPort}/`)).id as string
    const fastSub = (await webhookSubscription(uniqueName('fast'), `${prefix}/*`, `http://127.0.0.1:${fastPort}/`)).id as string
    const path = `${prefix}/s`
    await fetch(live.stream(path), { method: 'PUT', headers: { 'content-type': 'text/plain' } })
    let tail = ''
    for (let i = 0; i < 50; i++) {
      const res = await fetch(live.stream(path), { method: 'POST', headers: { 'content-type': 'text/plain' }, body: `chunk ${i};` })
      expect(res.status).toBe(204)
      tail = res.headers.get('stream-next-offset')!
    }
    await slow.next((line) => line.body?.subscription_id === slowSub)
    // The fast receiver's wakes end with everything acked while the slow one still hangs.
    await eventually(async () => ((await ackedOffset(fastSub, path)) === tail ? true : undefined), 'the fast receiver to ack the tail')
    expect(slow.seen.some((line) => line.body?.subscription_id === slowSub)).toBe(true)
    // The hanging attempt times out (1 s here) and the subscription shows it is retrying.
    await eventually(async () => ((await json(subUrl(slowSub), 'GET')).body.status === 'failed' ? true : undefined), 'the slow subscription to be failed')
    expect(await ackedOffset(slowSub, path)).not.toBe(tail)
  })

  test('a receiver that is down gets the wake when it comes back, retried with backoff', async () => {
    const port = await freePort()
    const id = (await webhookSubscription(uniqueName('down'), `${uniqueName('late')}/*`, `http://127.0.0.1:${port}/hook`)).id as string
    const pattern = (await json(subUrl(id), 'GET')).body.pattern as string
    const path = pattern.replace('*', 'x')
    const put = await fetch(live.stream(path), { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: 'while you were out' })
    await eventually(async () => ((await json(subUrl(id), 'GET')).body.status === 'failed' ? true : undefined), 'a failed attempt')
    const hook = receiver('done', port)
    const wake = await hook.next((line) => line.body?.subscription_id === id, 20_000)
    expect(wake.verified).toBe(true)
    await eventually(async () => ((await ackedOffset(id, path)) === put.headers.get('stream-next-offset') ? true : undefined), 'the ack of the late delivery')
    expect((await json(subUrl(id), 'GET')).body.status).toBe('active')
  })
})

describe('pull-wake workers', () => {
  test('a worker that dies holding the lease loses it when it expires; another claims, acks, and fences the dead one', async () => {
    const wakeStream = uniqueName('wake/pool')
    await fetch(live.stream(wakeStream), { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '[]' })
    const prefix = uniqueName('jobs')
    const id = uniqueName('pull')
    expect((await json(subUrl(id), 'PUT', { type: 'pull-wake', pattern: `${prefix}/*`, wake_stream: wakeStream, lease_ttl_ms: 1000 })).status).toBe(201)
    const base = live.url
    const worker = (name: string, hold: boolean) =>
      spawnChild([process.execPath, WORKER, '--base', base, '--sub', id, '--worker', name, '--wake-stream', wakeStream, ...(hold ? ['--hold'] : [])])
    const first = worker('worker-1', true)
    const firstLines = jsonLines(first)
    const path = `${prefix}/job-1`
    const put = await fetch(live.stream(path), { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"job":1}' })
    const tail = put.headers.get('stream-next-offset')
    const claimed = (await firstLines.next((line) => line.claimed !== undefined)).claimed
    expect(claimed.streams).toEqual([expect.objectContaining({ path, tail_offset: tail, has_pending: true })])

    const secondLines = jsonLines(worker('worker-2', false))
    const busy = await json(`${subUrl(id)}/claim`, 'POST', { worker: 'worker-3' })
    expect(busy).toMatchObject({ status: 409, body: { error: { code: 'ALREADY_CLAIMED', current_holder: 'worker-1' } } })
    first.kill('SIGKILL')
    const second = (await secondLines.next((line) => line.claimed !== undefined)).claimed
    expect(second.generation).toBeGreaterThan(claimed.generation)
    expect(second.streams).toEqual([expect.objectContaining({ path, tail_offset: tail })])
    expect((await secondLines.next((line) => line.acked !== undefined)).acked).toEqual({ status: 200, body: { ok: true, next_wake: false } })
    expect(await ackedOffset(id, path)).toBe(tail)

    // The dead worker's token names a generation that is gone.
    const stale = await json(`${subUrl(id)}/ack`, 'POST', { wake_id: claimed.wake_id, generation: claimed.generation, acks: [], done: true }, { authorization: `Bearer ${claimed.token}` })
    expect(stale).toMatchObject({ status: 409, body: { error: { code: 'FENCED' } } })
    expect((await json(`${subUrl(id)}/claim`, 'POST', { worker: 'worker-3' })).body.error.code).toBe('NO_PENDING_WORK')
  })
})

test('/metrics counts subscriptions, wakes and webhook attempts and failures', async () => {
  const families = parseMetrics(await (await fetch(`${live.url}/metrics`)).text())
  const value = (name: string): number => Number(families.find((family) => family.name === name)?.metrics[0]?.value)
  // The tests above made five subscriptions, woke each, and had deliveries fail.
  expect(value('ringstream_subscriptions')).toBe(5)
  expect(value('ringstream_subscription_wakes_total')).toBeGreaterThanOrEqual(5)
  expect(value('ringstream_webhook_attempts_total')).toBeGreaterThan(value('ringstream_webhook_failures_total'))
  expect(value('ringstream_webhook_failures_total')).toBeGreaterThanOrEqual(2)
  expect(families.map((family) => family.name)).toContain('ringstream_webhooks_in_flight')
})
