// PROTOCOL §6–7 (subscriptions) requirements docs/protocol-coverage.md listed as untested,
// checked over HTTP against a real in-process server with pull-wake subscriptions:
// 6.2-1 (a subscription needs a pattern or streams), 6.2-8 (a pattern links existing
// streams at their tail), 6.3-2 (callback, ack and release for a deleted subscription fail
// and advance no cursor), 7.2-2 (a release with work pending writes another wake event),
// 7.3-4 (an ack or release naming another wake_id is fenced) and 7.3-6 (a lease that
// expires with work pending schedules a new wake by itself).

import { describe, expect, test } from 'vitest'
import { uniqueName, useServer } from '../helpers.js'

const live = useServer()

const subUrl = (id: string): string => live.stream(`__ds/subscriptions/${id}`)

interface Answer {
  readonly status: number
  readonly body: any
}

interface WakeEvent {
  readonly type: string
  readonly subscription_id: string
  readonly stream: string
  readonly generation: number
  readonly ts: number
}

interface Claimed {
  readonly wake_id: string
  readonly generation: number
  readonly token: string
  readonly streams: Array<{ path: string; link_type: string; acked_offset: string; tail_offset: string; has_pending: boolean }>
}

async function json(url: string, method: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(url, { method, headers: { 'content-type': 'application/json', ...headers }, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await res.text()
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) }
}

/** Creates a JSON stream (with `body` as its first messages) and returns its tail. */
async function createStream(path: string, body?: string): Promise<string> {
  const res = await fetch(live.stream(path), { method: 'PUT', headers: { 'content-type': 'application/json' }, body })
  expect(res.status).toBe(201)
  return res.headers.get('stream-next-offset')!
}

/** Appends a JSON message and returns the stream's new tail. */
async function append(path: string, message: unknown): Promise<string> {
  const res = await fetch(live.stream(path), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(message) })
  expect(res.status).toBe(204)
  return res.headers.get('stream-next-offset')!
}

async function wakeEvents(wakeStream: string): Promise<WakeEvent[]> {
  const res = await fetch(`${live.stream(wakeStream)}?offset=-1`)
  expect(res.status).toBe(200)
  return (await res.json()) as WakeEvent[]
}

/** Polls the wake stream until an event matches, or fails after `timeoutMs`. */
async function waitForWake(wakeStream: string, matches: (event: WakeEvent) => boolean, timeoutMs = 5000): Promise<WakeEvent> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const events = await wakeEvents(wakeStream)
    const found = events.find(matches)
    if (found !== undefined) return found
    if (Date.now() > deadline) throw new Error(`no matching wake event within ${timeoutMs} ms; the wake stream holds ${JSON.stringify(events)}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** A pull-wake subscription over `<prefix>/*` with its own wake stream. */
async function pullWake(options: { leaseTtlMs?: number } = {}): Promise<{ id: string; prefix: string; wakeStream: string; config: Record<string, unknown> }> {
  const id = uniqueName('gap-sub')
  const prefix = uniqueName('gap-jobs')
  const wakeStream = uniqueName('gap-wake')
  await createStream(wakeStream, '[]')
  const config = { type: 'pull-wake', pattern: `${prefix}/*`, wake_stream: wakeStream, ...(options.leaseTtlMs === undefined ? {} : { lease_ttl_ms: options.leaseTtlMs }) }
  const created = await json(subUrl(id), 'PUT', config)
  expect(created.status).toBe(201)
  return { id, prefix, wakeStream, config }
}

async function claim(id: string, worker: string): Promise<Claimed> {
  const claimed = await json(`${subUrl(id)}/claim`, 'POST', { worker })
  expect(claimed.status).toBe(200)
  return claimed.body as Claimed
}

async function ackedOffset(id: string, path: string): Promise<string | undefined> {
  const got = await json(subUrl(id), 'GET')
  expect(got.status).toBe(200)
  return got.body.streams.find((stream: { path: string }) => stream.path === path)?.acked_offset
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })

describe('§6.2 creating a subscription', () => {
  // 6.2-1: "At least one of pattern or streams MUST be present."
  test('a subscription with neither pattern nor streams is refused with 400 and not created', async () => {
    const wakeStream = uniqueName('gap-wake')
    await createStream(wakeStream, '[]')
    const bodies = [
      { type: 'pull-wake', wake_stream: wakeStream },
      { type: 'pull-wake', wake_stream: wakeStream, streams: [] },
      { type: 'pull-wake', wake_stream: wakeStream, pattern: null, streams: null },
      { type: 'pull-wake', wake_stream: wakeStream, lease_ttl_ms: 5000, description: 'no streams at all' },
    ]
    for (const body of bodies) {
      const id = uniqueName('gap-empty')
      const refused = await json(subUrl(id), 'PUT', body)
      expect(refused.status, JSON.stringify(body)).toBe(400)
      expect(refused.body.error.code).toBe('BAD_REQUEST')
      expect((await json(subUrl(id), 'GET')).status).toBe(404)
    }
    // The same body with streams is accepted: the refusal was for the missing links.
    const accepted = await json(subUrl(uniqueName('gap-empty')), 'PUT', { type: 'pull-wake', wake_stream: wakeStream, streams: [uniqueName('gap-some')] })
    expect(accepted.status).toBe(201)
  })

  // 6.2-8: "the server MUST eagerly backfill matching existing streams … Existing streams are
  // linked at their current tail offset so subscription creation does not replay
  // historical data by default."
  test('a pattern links existing matching streams at their tail: data from before it wakes nothing, data after it wakes', async () => {
    const prefix = uniqueName('gap-existing')
    const path = `${prefix}/a`
    await createStream(path, '{"old":1}')
    const oldTail = await append(path, { old: 2 })
    const other = `${uniqueName('gap-elsewhere')}/b`
    await createStream(other, '{"not":"matched"}')
    const wakeStream = uniqueName('gap-wake')
    await createStream(wakeStream, '[]')
    const id = uniqueName('gap-backfill')
    const created = await json(subUrl(id), 'PUT', { type: 'pull-wake', pattern: `${prefix}/*`, wake_stream: wakeStream })
    expect(created.status).toBe(201)
    // Linked at once, at the tail, by the glob; the non-matching stream is not linked.
    expect(created.body.streams).toEqual([{ path, link_type: 'glob', acked_offset: oldTail }])
    expect((await json(subUrl(id), 'GET')).body.streams).toEqual([{ path, link_type: 'glob', acked_offset: oldTail }])
    // Nothing pending: no wake event, and nothing to claim.
    expect(await wakeEvents(wakeStream)).toEqual([])
    expect(await json(`${subUrl(id)}/claim`, 'POST', { worker: 'w1' })).toMatchObject({ status: 409, body: { error: { code: 'NO_PENDING_WORK' } } })

    const newTail = await append(path, { new: 1 })
    const wake = await waitForWake(wakeStream, (event) => event.subscription_id === id)
    expect(wake).toMatchObject({ type: 'wake', subscription_id: id, stream: path, generation: 1 })
    const claimed = await claim(id, 'w1')
    expect(claimed.generation).toBe(1)
    // The wake covers only what came after the subscription: from the old tail to the new.
    expect(claimed.streams).toEqual([{ path, link_type: 'glob', acked_offset: oldTail, tail_offset: newTail, has_pending: true }])
  })
})

describe('§6.3 a deleted subscription', () => {
  // 6.3-2: "In-flight callback, ack, or release requests for a deleted subscription MUST fail
  // and MUST NOT advance cursors."
  test('callback, ack and release for a deleted subscription fail with 404', async () => {
    const { id, prefix } = await pullWake()
    const path = `${prefix}/a`
    await createStream(path, '{"job":1}')
    const claimed = await claim(id, 'w1')
    const tail = claimed.streams[0]!.tail_offset
    expect((await fetch(subUrl(id), { method: 'DELETE' })).status).toBe(204)

    const request = { wake_id: claimed.wake_id, generation: claimed.generation, acks: [{ stream: path, offset: tail }], done: true }
    for (const action of ['ack', 'callback', 'release']) {
      const answer = await json(`${subUrl(id)}/${action}`, 'POST', request, bearer(claimed.token))
      expect(answer.status, action).toBe(404)
      expect(answer.body.error.code, action).toBe('SUBSCRIPTION_NOT_FOUND')
    }
    expect((await json(subUrl(id), 'GET')).status).toBe(404)
  })

  test('a wake token of a deleted subscription neither acks nor releases the subscription re-created under its id, whose cursor stays', async () => {
    const { id, prefix, config } = await pullWake()
    const path = `${prefix}/a`
    await createStream(path, '{"job":1}')
    const old = await claim(id, 'w1')
    const firstTail = old.streams[0]!.tail_offset
    expect((await fetch(subUrl(id), { method: 'DELETE' })).status).toBe(204)
    // Re-created with the same id and configuration: the stream is linked at its tail.
    expect((await json(subUrl(id), 'PUT', config)).status).toBe(201)
    expect(await ackedOffset(id, path)).toBe(firstTail)
    const secondTail = await append(path, { job: 2 })
    const current = await claim(id, 'w2')
    // The new subscription's first wake has the generation the old one's had.
    expect(current.generation).toBe(old.generation)

    const stale = { wake_id: old.wake_id, generation: old.generation, acks: [{ stream: path, offset: secondTail }], done: true }
    for (const action of ['ack', 'release']) {
      const answer = await json(`${subUrl(id)}/${action}`, 'POST', stale, bearer(old.token))
      expect(answer.status, action).toBeGreaterThanOrEqual(400)
      expect(answer.status, action).toBeLessThan(500)
    }
    // Nothing moved: the cursor is where the re-created subscription linked it, and its own
    // worker still holds the lease.
    expect(await ackedOffset(id, path)).toBe(firstTail)
    expect(await json(`${subUrl(id)}/claim`, 'POST', { worker: 'w3' })).toMatchObject({ status: 409, body: { error: { code: 'ALREADY_CLAIMED', current_holder: 'w2' } } })
    const acked = await json(`${subUrl(id)}/ack`, 'POST', { wake_id: current.wake_id, generation: current.generation, acks: [{ stream: path, offset: secondTail }], done: true }, bearer(current.token))
    expect(acked).toEqual({ status: 200, body: { ok: true, next_wake: false } })
    expect(await ackedOffset(id, path)).toBe(secondTail)
  })
})

describe('§7.2 release', () => {
  // 7.2-2: "If pending work remains after release, the server MUST write another wake event
  // for a later claim attempt."
  test('a release with work still pending writes a new wake event with a new generation', async () => {
    const { id, prefix, wakeStream } = await pullWake()
    const path = `${prefix}/a`
    const tail = await createStream(path, '{"job":1}')
    const first = await waitForWake(wakeStream, (event) => event.subscription_id === id)
    const claimed = await claim(id, 'w1')
    expect(claimed.generation).toBe(first.generation)
    expect(await wakeEvents(wakeStream)).toHaveLength(1)

    const released = await fetch(`${subUrl(id)}/release`, { method: 'POST', headers: { 'content-type': 'application/json', ...bearer(claimed.token) }, body: JSON.stringify({ wake_id: claimed.wake_id, generation: claimed.generation }) })
    expect(released.status).toBe(204)
    const again = await waitForWake(wakeStream, (event) => event.subscription_id === id && event.generation > claimed.generation)
    expect(again).toMatchObject({ type: 'wake', subscription_id: id, stream: path, generation: claimed.generation + 1 })
    expect(await wakeEvents(wakeStream)).toHaveLength(2)
    // The later claim gets that wake, with the work still pending.
    const next = await claim(id, 'w2')
    expect(next.generation).toBe(again.generation)
    expect(next.streams).toEqual([expect.objectContaining({ path, acked_offset: '-1', tail_offset: tail, has_pending: true })])

    // With everything acked (a heartbeat ack, no done), a release leaves nothing pending:
    // no further wake event (it would be written before the release is answered).
    const heartbeat = await json(`${subUrl(id)}/ack`, 'POST', { wake_id: next.wake_id, generation: next.generation, acks: [{ stream: path, offset: tail }] }, bearer(next.token))
    expect(heartbeat).toEqual({ status: 200, body: { ok: true, next_wake: false } })
    const idle = await fetch(`${subUrl(id)}/release`, { method: 'POST', headers: { 'content-type': 'application/json', ...bearer(next.token) }, body: JSON.stringify({ wake_id: next.wake_id, generation: next.generation }) })
    expect(idle.status).toBe(204)
    expect(await wakeEvents(wakeStream)).toHaveLength(2)
  })
})

describe('§7.3 fencing and leases', () => {
  // 7.3-4: "Servers MUST reject a callback, ack, or release unless … Request wake_id matches
  // the current wake."
  test('an ack or release naming another wake_id is refused with 409 FENCED and changes nothing', async () => {
    const { id, prefix, wakeStream } = await pullWake()
    const path = `${prefix}/a`
    const tail = await createStream(path, '{"job":1}')
    await waitForWake(wakeStream, (event) => event.subscription_id === id)
    const previous = await claim(id, 'w1')
    const released = await json(`${subUrl(id)}/release`, 'POST', { wake_id: previous.wake_id, generation: previous.generation }, bearer(previous.token))
    expect(released.status).toBe(204)
    const current = await claim(id, 'w2')
    expect(current.wake_id).not.toBe(previous.wake_id)

    // The current token and generation, with the previous wake's id or a made-up one.
    for (const wakeId of [previous.wake_id, 'w_AAAAAAAAAAAAAAAAAAAAAAAA', '']) {
      const ack = await json(`${subUrl(id)}/ack`, 'POST', { wake_id: wakeId, generation: current.generation, acks: [{ stream: path, offset: tail }], done: true }, bearer(current.token))
      expect(ack, `ack with wake_id ${JSON.stringify(wakeId)}`).toMatchObject({ status: 409, body: { error: { code: 'FENCED' } } })
      const heartbeat = await json(`${subUrl(id)}/ack`, 'POST', { wake_id: wakeId, generation: current.generation, acks: [{ stream: path, offset: tail }] }, bearer(current.token))
      expect(heartbeat, `heartbeat with wake_id ${JSON.stringify(wakeId)}`).toMatchObject({ status: 409, body: { error: { code: 'FENCED' } } })
      const release = await json(`${subUrl(id)}/release`, 'POST', { wake_id: wakeId, generation: current.generation }, bearer(current.token))
      expect(release, `release with wake_id ${JSON.stringify(wakeId)}`).toMatchObject({ status: 409, body: { error: { code: 'FENCED' } } })
    }
    // No cursor moved and the lease is still w2's.
    expect(await ackedOffset(id, path)).toBe('-1')
    expect(await json(`${subUrl(id)}/claim`, 'POST', { worker: 'w3' })).toMatchObject({ status: 409, body: { error: { code: 'ALREADY_CLAIMED', current_holder: 'w2' } } })
    // The right wake_id is accepted.
    const acked = await json(`${subUrl(id)}/ack`, 'POST', { wake_id: current.wake_id, generation: current.generation, acks: [{ stream: path, offset: tail }], done: true }, bearer(current.token))
    expect(acked).toEqual({ status: 200, body: { ok: true, next_wake: false } })
    expect(await ackedOffset(id, path)).toBe(tail)
  })

  // 7.3-6: "When a lease expires, the server MUST clear the holder and wake token; if pending
  // work remains, it MUST schedule another wake."
  test('a lease that expires with work pending writes a new wake event by itself, with no claim', async () => {
    const { id, prefix, wakeStream } = await pullWake({ leaseTtlMs: 1000 })
    const path = `${prefix}/a`
    const tail = await createStream(path, '{"job":1}')
    await waitForWake(wakeStream, (event) => event.subscription_id === id)
    const claimed = await claim(id, 'w1')
    const claimedAt = Date.now()
    expect((await json(subUrl(id), 'GET')).body.generation).toBe(claimed.generation)

    // Only reads from here on (the wake stream, the subscription): nobody claims.
    const again = await waitForWake(wakeStream, (event) => event.subscription_id === id && event.generation > claimed.generation, 6000)
    const elapsed = Date.now() - claimedAt
    expect(again).toMatchObject({ type: 'wake', subscription_id: id, stream: path, generation: claimed.generation + 1 })
    expect(elapsed).toBeGreaterThanOrEqual(900)
    expect((await json(subUrl(id), 'GET')).body.generation).toBe(claimed.generation + 1)
    expect(await wakeEvents(wakeStream)).toHaveLength(2)
    // The holder is cleared: its token is fenced, and the new wake can be claimed at once.
    const stale = await json(`${subUrl(id)}/ack`, 'POST', { wake_id: claimed.wake_id, generation: claimed.generation, acks: [{ stream: path, offset: tail }], done: true }, bearer(claimed.token))
    expect(stale).toMatchObject({ status: 409, body: { error: { code: 'FENCED' } } })
    const next = await claim(id, 'w2')
    expect(next.generation).toBe(again.generation)
    expect(next.streams).toEqual([expect.objectContaining({ path, acked_offset: '-1', tail_offset: tail, has_pending: true })])
  })

  test('a lease that expires with nothing pending schedules no wake', async () => {
    const { id, prefix, wakeStream } = await pullWake({ leaseTtlMs: 1000 })
    const path = `${prefix}/a`
    const tail = await createStream(path, '{"job":1}')
    await waitForWake(wakeStream, (event) => event.subscription_id === id)
    const claimed = await claim(id, 'w1')
    // Everything acked by a heartbeat (no done): the lease is held, nothing is pending.
    const heartbeat = await json(`${subUrl(id)}/ack`, 'POST', { wake_id: claimed.wake_id, generation: claimed.generation, acks: [{ stream: path, offset: tail }] }, bearer(claimed.token))
    expect(heartbeat.status).toBe(200)
    // Past the lease (1 s) and the sweep that ends it (every 100 ms).
    await new Promise((resolve) => setTimeout(resolve, 1600))
    const stale = await json(`${subUrl(id)}/ack`, 'POST', { wake_id: claimed.wake_id, generation: claimed.generation, acks: [], done: true }, bearer(claimed.token))
    expect(stale).toMatchObject({ status: 409, body: { error: { code: 'FENCED' } } })
    expect(await wakeEvents(wakeStream)).toHaveLength(1)
    expect((await json(subUrl(id), 'GET')).body.generation).toBe(claimed.generation)
  })
})
