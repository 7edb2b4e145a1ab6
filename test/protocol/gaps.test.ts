// PROTOCOL requirements on reads, forks and the default port that docs/protocol-coverage.md
// listed as untested, against a real in-process server: 5.8-17 (SSE connections are closed
// after a while, here sseConnectionMs = 1.5 s, after a control event to resume from), 8-30
// (a fork offset that is not at a message boundary of a JSON source is refused with 400) and
// 13.1-1 (the default port is 4437).

import { execFileSync } from 'node:child_process'
import { describe, expect, test } from 'vitest'
import { resolveConfig } from '../../src/cli.js'
import { DEFAULTS } from '../../src/config.js'
import { uniqueName, useServer } from '../helpers.js'
import { BIN } from '../process.js'

const SSE_CONNECTION_MS = 1500
const live = useServer({ sseConnectionMs: SSE_CONNECTION_MS, sseKeepAliveMs: 500 })

const offsetOf = (position: number): string => `0000000000000000_${String(position).padStart(16, '0')}`
const positionOf = (offset: string): number => Number(offset.split('_')[1])

async function create(path: string, contentType: string, body?: string): Promise<string> {
  const res = await fetch(live.stream(path), { method: 'PUT', headers: { 'content-type': contentType }, body })
  expect(res.status).toBe(201)
  return res.headers.get('stream-next-offset')!
}

async function fork(path: string, source: string, offset: string): Promise<Response> {
  return fetch(live.stream(path), { method: 'PUT', headers: { 'stream-forked-from': `/v1/stream/${source}`, 'stream-fork-offset': offset } })
}

interface SseEvent {
  readonly type: string
  readonly data: string
}

/** The events of an SSE body, keep-alive comments left out. */
function sseEvents(text: string): SseEvent[] {
  const events: SseEvent[] = []
  for (const block of text.split('\n\n')) {
    const lines = block.split('\n').filter((line) => line !== '' && !line.startsWith(':'))
    if (lines.length === 0) continue
    const type = lines.find((line) => line.startsWith('event:'))?.slice('event:'.length).trim() ?? 'message'
    const data = lines
      .filter((line) => line.startsWith('data:'))
      .map((line) => line.slice('data:'.length).replace(/^ /, ''))
      .join('\n')
    events.push({ type, data })
  }
  return events
}

describe('§5.8 SSE connection lifecycle', () => {
  // 5.8-17: "Server SHOULD close connections roughly every ~60 seconds to enable CDN
  // collapsing"; ringstream's period is sseConnectionMs (1.5 s here).
  test('an SSE connection to an open stream is ended by the server after sseConnectionMs, an append notwithstanding, after a control event to resume from', async () => {
    const path = uniqueName('sse-recycle')
    await create(path, 'text/plain', 'hello')
    const startedAt = Date.now()
    const res = await fetch(`${live.stream(path)}?offset=-1&live=sse`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/event-stream')
    // Data while connected does not keep the connection open.
    await new Promise((resolve) => setTimeout(resolve, 500))
    const appended = await fetch(live.stream(path), { method: 'POST', headers: { 'content-type': 'text/plain' }, body: ' world' })
    expect(appended.status).toBe(204)
    const tail = appended.headers.get('stream-next-offset')!
    const text = await Promise.race([
      res.text(), // resolves only once the server ends the response
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the server kept the SSE connection open for 8 s')), 8000)),
    ])
    const elapsed = Date.now() - startedAt
    expect(elapsed).toBeGreaterThanOrEqual(SSE_CONNECTION_MS - 100)
    expect(elapsed).toBeLessThan(SSE_CONNECTION_MS + 2500)

    const events = sseEvents(text)
    expect(events.filter((event) => event.type === 'data').map((event) => event.data).join('')).toBe('hello world')
    // The last event is a control event at the tail that lets the client reconnect: not closed.
    const last = events.at(-1)!
    expect(last.type).toBe('control')
    const control = JSON.parse(last.data) as Record<string, unknown>
    expect(control.streamNextOffset).toBe(tail)
    expect(control.streamClosed).toBeUndefined()
    expect(typeof control.streamCursor).toBe('string')

    // Resuming from it gets nothing twice.
    const resumed = await fetch(`${live.stream(path)}?offset=${control.streamNextOffset as string}`)
    expect(resumed.status).toBe(200)
    expect(await resumed.text()).toBe('')
  })
})

describe('§8 fork offset alignment', () => {
  // 8-30: "Servers MAY validate offset alignment and reject invalid offsets with 400 Bad
  // Request"; ringstream validates JSON message boundaries.
  test('a fork offset inside a message of a JSON source is refused with 400', async () => {
    const source = uniqueName('fork-json')
    const first = await create(source, 'application/json', '{"event":"created","n":1}')
    const appended = await fetch(live.stream(source), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '[{"event":"updated","n":2},{"event":"deleted","n":3}]' })
    expect(appended.status).toBe(204)
    const tail = appended.headers.get('stream-next-offset')!
    expect(positionOf(first)).toBeGreaterThan(2)

    for (const inside of [1, positionOf(first) - 1, positionOf(first) + 1, positionOf(tail) - 1]) {
      const res = await fork(uniqueName('fork-json-bad'), source, offsetOf(inside))
      expect(res.status, `fork at position ${inside}`).toBe(400)
    }
    // The server's own offsets are boundaries: forks there are made and read whole messages.
    const atFirst = uniqueName('fork-json-ok')
    expect((await fork(atFirst, source, first)).status).toBe(201)
    expect(await (await fetch(`${live.stream(atFirst)}?offset=-1`)).json()).toEqual([{ event: 'created', n: 1 }])
    const atTail = uniqueName('fork-json-ok')
    expect((await fork(atTail, source, tail)).status).toBe(201)
    expect(await (await fetch(`${live.stream(atTail)}?offset=-1`)).json()).toHaveLength(3)
    const atStart = uniqueName('fork-json-ok')
    expect((await fork(atStart, source, offsetOf(0))).status).toBe(201)
    expect(await (await fetch(`${live.stream(atStart)}?offset=-1`)).json()).toEqual([])
  })

  test('a fork offset inside a message a JSON fork inherited is refused with 400', async () => {
    const source = uniqueName('fork-json-src')
    const first = await create(source, 'application/json', '{"event":"created","n":1}')
    const middle = uniqueName('fork-json-mid')
    expect((await fork(middle, source, first)).status).toBe(201)
    const own = await fetch(live.stream(middle), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"event":"forked","n":2}' })
    expect(own.status).toBe(204)
    const tail = own.headers.get('stream-next-offset')!
    // Inside the inherited message, and inside the fork's own.
    for (const inside of [positionOf(first) - 1, positionOf(tail) - 1]) {
      const res = await fork(uniqueName('fork-json-bad'), middle, offsetOf(inside))
      expect(res.status, `fork at position ${inside}`).toBe(400)
    }
    expect((await fork(uniqueName('fork-json-ok'), middle, first)).status).toBe(201)
  })

  test('a byte stream has no message boundaries: a fork at any byte offset is made and holds the bytes before it', async () => {
    const source = uniqueName('fork-bytes')
    await create(source, 'application/octet-stream', 'abcdef')
    const forked = uniqueName('fork-bytes-mid')
    expect((await fork(forked, source, offsetOf(3))).status).toBe(201)
    expect(await (await fetch(`${live.stream(forked)}?offset=-1`)).text()).toBe('abc')
  })
})

describe('§13.1 default port', () => {
  // 13.1-1: "Standalone server implementations SHOULD use port 4437 as the default when no
  // explicit port is configured."
  test('the default port is 4437: the configuration default, no port from the command line without --port, and --help says so', () => {
    expect(DEFAULTS.port).toBe(4437)
    const resolved = resolveConfig([], {})
    expect(resolved).not.toBe('help')
    expect((resolved as Record<string, unknown>).port).toBeUndefined()
    const help = execFileSync(process.execPath, [BIN, '--help'], { encoding: 'utf8' })
    expect(help).toMatch(/--port <n>.*\(default 4437\)/)
  })
})
