// The browser: Debian's chromium, headless, loads a page (page/main.ts, bundling the official
// @durable-streams/client and @durable-streams/state) from another origin than the server,
// through `deploy/local-cluster.sh --nodes 1 --tls`: HAProxy with TLS and HTTP/2 in front of
// one node that requires bearer tokens. Over HTTP/2 the page's 20 live readers (SSE and
// long-poll, JSON and text) see every append in order within 1 s of its acknowledgement, a
// reload resumes each from the offset it saved, a wrong token surfaces as a 401 and StreamDB
// materializes a State Protocol stream live, and the page's own idempotent producer appends
// exactly once. With the token as ?access_token= (--auth-query-token on) live reads need no
// CORS preflight; with a header, each new URL does. Over plain HTTP/1.1 the same page
// stalls: the browser's 6 connections per origin end up held by six SSE reads.
// RINGSTREAM_BROWSER_SCREENSHOT=FILE saves the page after the HTTP/2 run (docs/browser-test.png).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { uniqueName } from '../helpers.js'
import { haproxyMissing, useLocalCluster } from '../integration/local-cluster.js'
import { eventually } from '../subscriptions/children.js'
import { type PageState, READERS, kindOf, modeOf } from './layout.js'
import { type PageServer, chromiumMissing, launchChromium, servePage } from './page-server.js'

const TOKEN = 'browser-test-token-0123456789'
const tokens = mkdtempSync(join(tmpdir(), 'ringstream-browser-'))
writeFileSync(join(tokens, 'tokens'), `${TOKEN} write *\n`)

describe.skipIf(haproxyMissing ?? chromiumMissing)('in a real browser (chromium) with the official client', () => {
  const cluster = useLocalCluster(1, [], ['--auth-tokens', join(tokens, 'tokens'), '--auth-query-token', 'on'], { tls: true })
  let pages: PageServer
  let browser: Browser

  beforeAll(async () => {
    ;[pages, browser] = await Promise.all([servePage(), launchChromium()])
  }, 60_000)

  afterAll(async () => {
    await Promise.all([browser?.close(), pages?.close()])
    rmSync(tokens, { recursive: true, force: true })
  })

  /** What the server's node is sent directly (the test's own writes), with the token. */
  const node = (path: string, init: RequestInit = {}): Promise<Response> =>
    fetch(`${cluster.nodeUrl(1)}/v1/stream/${path}`, { ...init, headers: { Authorization: `Bearer ${TOKEN}`, ...init.headers } })

  async function createStreams(run: string): Promise<void> {
    for (let i = 0; i < READERS; i++) {
      const type = kindOf(i) === 'json' ? 'application/json' : 'text/plain'
      expect((await node(`${run}-${i}`, { method: 'PUT', headers: { 'Content-Type': type } })).status).toBe(201)
    }
    expect((await node(`${run}-state`, { method: 'PUT', headers: { 'Content-Type': 'application/json' } })).status).toBe(201)
  }

  /** Appends message n to every reader's stream at once; returns when each was acknowledged. */
  async function appendToAll(run: string, n: number): Promise<number[]> {
    return Promise.all(
      Array.from({ length: READERS }, async (_, i) => {
        const json = kindOf(i) === 'json'
        const response = await node(`${run}-${i}`, {
          method: 'POST',
          headers: { 'Content-Type': json ? 'application/json' : 'text/plain' },
          body: json ? JSON.stringify({ n }) : `m${n}\n`,
        })
        expect(response.status).toBe(204)
        return Date.now()
      }),
    )
  }

  /** The protocol and connection of every response from `origin` the page gets, as Chrome's
   * DevTools protocol reports them (the page itself sees no protocol for another origin). */
  async function watchWire(page: Page, origin: string): Promise<Array<{ protocol: string; connectionId: number }>> {
    const seen: Array<{ protocol: string; connectionId: number }> = []
    const devtools = await page.context().newCDPSession(page)
    devtools.on('Network.responseReceived', ({ response }) => {
      if (response.url.startsWith(origin)) seen.push({ protocol: response.protocol ?? '', connectionId: response.connectionId })
    })
    await devtools.send('Network.enable')
    return seen
  }

  /** How many CORS preflights (OPTIONS) the node has answered, from its /metrics. */
  async function preflights(): Promise<number> {
    const text = await (await fetch(`${cluster.nodeUrl(1)}/metrics`)).text()
    return Number(/^ringstream_http_responses_total\{route="stream",method="OPTIONS",code="204"\} (\d+)$/m.exec(text)?.[1] ?? 0)
  }

  /** Five rounds of appends to all 20 streams; returns when every reader of `page` has all
   * five, having checked that each got them in order within 1 s of their acknowledgement. */
  async function fiveRounds(page: Page, run: string): Promise<PageState> {
    const acks: number[][] = []
    for (let n = 1; n <= 5; n++) acks.push(await appendToAll(run, n))
    const seen = await eventually(async () => {
      const now = await state(page)
      return now.readers.every((reader) => reader.received.length >= 5) ? now : undefined
    }, 'every reader to see 5 messages', 10_000)
    for (const reader of seen.readers) {
      expect(reader.received.map((r) => r.message), `reader ${reader.index} (${reader.mode}, ${reader.kind})`).toEqual([1, 2, 3, 4, 5].map((n) => expectedMessage(reader.index, n)))
      reader.received.forEach((r, k) => expect(r.at - acks[k]![reader.index]!, `reader ${reader.index} message ${k + 1}: ms after its ack`).toBeLessThan(1000))
    }
    const delays = seen.readers.flatMap((reader) => reader.received.map((r, k) => r.at - acks[k]![reader.index]!))
    console.log(`browser test: 100 deliveries, ms after the ack: median ${delays.sort((a, b) => a - b)[50]}, max ${delays.at(-1)}`)
    return seen
  }

  const expectedMessage = (i: number, n: number): string => (kindOf(i) === 'json' ? JSON.stringify({ n }) : `m${n}`)
  const state = (page: Page): Promise<PageState> => page.evaluate(() => (globalThis as unknown as { ringstreamPage: PageState }).ringstreamPage)
  const pageUrl = (server: string, run: string, only = ''): string =>
    `${pages.origin}/?server=${encodeURIComponent(`${server}/v1/stream`)}&run=${run}&token=${TOKEN}${only}`

  test('over HTTP/2: 20 live readers see every append in order within 1 s; a reload resumes; a wrong token is a 401; StreamDB is live', async () => {
    const run = uniqueName('h2')
    await createStreams(run)
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1100, height: 760 } })
    const page = await context.newPage()
    const wire = await watchWire(page, cluster.tlsUrl())
    await page.goto(pageUrl(cluster.tlsUrl(), run))
    await eventually(async () => ((await state(page)).readers.every((reader) => reader.status === 'live') ? true : undefined), 'every reader live', 10_000)

    // Five rounds of appends to all 20 streams: every reader gets each, in order, within 1 s.
    const preflightsBefore = await preflights()
    const seen = await fiveRounds(page, run)
    // A header makes every read with a new URL (each long-poll's offset) wait for a preflight.
    expect(await preflights()).toBeGreaterThan(preflightsBefore)
    // Every response came over HTTP/2, on one connection.
    expect(new Set(wire.map((response) => response.protocol))).toEqual(new Set(['h2']))
    expect(new Set(wire.map((response) => response.connectionId)).size).toBe(1)
    expect(seen.wrongToken).toBe('FetchError 401')
    // The page's own writes: created, and 3 appends by an idempotent producer, exactly once.
    const written = await eventually(async () => (await state(page)).written, 'the page to write')
    expect(written).toMatch(/^3 appended, next offset /)
    expect(await (await node(`${run}-from-page?offset=-1`)).json()).toEqual([1, 2, 3].map((n) => ({ from: 'page', n })))

    // StreamDB: inserts, an update and a delete, materialized live.
    const change = (key: string, operation: string, value?: object): object => ({ type: 'item', key, value, headers: { operation } })
    const changes = [change('a', 'insert', { id: 'a', title: 'first' }), change('b', 'insert', { id: 'b', title: 'second' }), change('a', 'update', { id: 'a', title: 'first, edited' }), change('b', 'delete')]
    for (const c of changes) expect((await node(`${run}-state`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(c) })).status).toBe(204)
    const rows = await eventually(async () => {
      const now = (await state(page)).stateRows
      return Object.keys(now).length === 1 && now.a?.includes('edited') ? now : undefined
    }, 'StreamDB to hold the one remaining row', 10_000)
    expect(rows).toEqual({ a: JSON.stringify({ id: 'a', title: 'first, edited' }) })

    // Away from the page, message 6 is appended; back on it, each reader resumes from the
    // offset it saved and gets 6 and then 7, with nothing before 6 again.
    const before = (await state(page)).readers.map((reader) => reader.offset)
    await page.goto('about:blank')
    await appendToAll(run, 6)
    await page.goto(pageUrl(cluster.tlsUrl(), run))
    await eventually(async () => ((await state(page)).readers.every((reader) => reader.status === 'live') ? true : undefined), 'every reader live again', 10_000)
    await appendToAll(run, 7)
    const resumed = await eventually(async () => {
      const now = await state(page)
      return now.readers.every((reader) => reader.received.length >= 2) ? now : undefined
    }, 'every reader to see 2 messages after the reload', 10_000)
    for (const reader of resumed.readers) {
      expect(reader.resumedFrom).toBe(before[reader.index])
      expect(reader.received.map((r) => r.message), `reader ${reader.index} after the reload`).toEqual([6, 7].map((n) => expectedMessage(reader.index, n)))
    }
    // The reloaded page's producer sent its 3 appends again, with the same id, epoch and
    // sequence numbers: duplicates, not new messages.
    expect(await eventually(async () => (await state(page)).written, 'the reloaded page to write')).toMatch(/^3 appended, next offset /)
    expect(await (await node(`${run}-from-page?offset=-1`)).json()).toEqual([1, 2, 3].map((n) => ({ from: 'page', n })))
    if (process.env.RINGSTREAM_BROWSER_SCREENSHOT !== undefined) await page.screenshot({ path: process.env.RINGSTREAM_BROWSER_SCREENSHOT, fullPage: true })
    await context.close()
  }, 90_000)

  test('with the token as ?access_token= (--auth-query-token on), live reads need no CORS preflight', async () => {
    const run = uniqueName('query')
    await createStreams(run)
    const context = await browser.newContext({ ignoreHTTPSErrors: true })
    const page = await context.newPage()
    const before = await preflights()
    await page.goto(`${pageUrl(cluster.tlsUrl(), run, '&only=readers')}&token-in=query`)
    await eventually(async () => ((await state(page)).readers.every((reader) => reader.status === 'live') ? true : undefined), 'every reader live', 10_000)
    await fiveRounds(page, run)
    expect(await preflights()).toBe(before)
    await context.close()
  }, 90_000)

  test('over plain HTTP/1.1 the same page stalls: six SSE readers hold the six connections', async () => {
    const run = uniqueName('h1')
    await createStreams(run)
    const context = await browser.newContext({ viewport: { width: 1100, height: 760 } })
    const page = await context.newPage()
    const wire = await watchWire(page, cluster.nodeUrl(1))
    await page.goto(pageUrl(cluster.nodeUrl(1), run, '&only=readers'))
    await eventually(async () => ((await state(page)).readers.every((reader) => reader.status === 'live') ? true : undefined), 'every reader opened', 10_000)
    // Long-polls give their connection back when answered, SSE reads keep theirs: appends
    // until the browser's 6 connections are all held by SSE reads (the first round, here).
    let complete: number[] = []
    let n = 0
    while (n < 6) {
      await appendToAll(run, ++n)
      await new Promise((resolve) => setTimeout(resolve, 1000))
      complete = (await state(page)).readers.filter((reader) => reader.received.length === n).map((reader) => reader.index)
      if (n >= 2 && complete.length === 6 && complete.every((i) => modeOf(i) === 'sse')) break
    }
    const readers = (await state(page)).readers
    expect(complete.map(modeOf), `readers with all ${n} appends: ${complete}`).toEqual(Array(6).fill('sse'))
    for (const reader of readers) if (!complete.includes(reader.index)) expect(reader.received.length, `reader ${reader.index}`).toBeLessThan(n)
    expect(new Set(wire.map((response) => response.protocol))).toEqual(new Set(['http/1.1']))
    expect(new Set(wire.map((response) => response.connectionId)).size).toBe(6)
    if (process.env.RINGSTREAM_BROWSER_SCREENSHOT !== undefined) await page.screenshot({ path: process.env.RINGSTREAM_BROWSER_SCREENSHOT.replace(/\.png$/, '-http1.png'), fullPage: true })
    await context.close()
  }, 90_000)
})
