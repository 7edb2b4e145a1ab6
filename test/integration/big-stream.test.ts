// Big streams against the real server process: a JSON and a binary stream of 1,000,000
// appends each (filled in-process by bench/lib/fill-streams.mjs, the last 200,000 only
// in the WAL as after a kill) are served byte-exact at offsets all over them — index page
// boundaries, the checkpoint's edge, the WAL tail — after recovery, after SIGTERM + restart
// and after kill -9 + restart; long-poll and SSE start from old offsets; a sub-offset fork
// of an old append; deleting the streams removes their data and index files.

import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { formatOffset } from '../../src/protocol/offset.js'
import { ringstream, startup, useChildren } from '../process.js'

const FILL = fileURLToPath(new URL('../../bench/lib/fill-streams.mjs', import.meta.url))
const APPENDS = 1_000_000
const CHECKPOINT_AT = 800_000
const dataDir = mkdtempSync(join(tmpdir(), 'ringstream-big-'))
const spawnChild = useChildren()

const jsonMessage = (i: number): string => `{"i":${i}}`
const binaryAppend = (i: number): string => `b${i};`

/** Start positions of every append (JSON: each one message followed by ','), and the end. */
function positions(length: (i: number) => number, count: number): Float64Array {
  const starts = new Float64Array(count + 1)
  for (let i = 0; i < count; i++) starts[i + 1] = starts[i]! + length(i)
  return starts
}
const jsonAt = positions((i) => jsonMessage(i).length + 1, APPENDS + 100)
const binaryAt = positions((i) => binaryAppend(i).length, APPENDS + 100)
/** 1 MiB segments: the JSON stream spans 13 segment files, the binary one 8. */
const SEGMENT_BYTES = 1024 * 1024
/** The appends on both sides of the first few segment boundaries of a stream. */
function aroundBoundaries(starts: Float64Array): number[] {
  const around: number[] = []
  for (let boundary = SEGMENT_BYTES; boundary < starts[APPENDS]! && around.length < 24; boundary += 3 * SEGMENT_BYTES) {
    let k = 0
    while (starts[k + 1]! <= boundary) k++
    around.push(k - 1, k, k + 1)
  }
  return around
}
const SAMPLES = [0, 1, 511, 512, 513, 1023, 1024, 65_536, 131_071, 131_072, 400_000, 799_999, 800_000, 800_001, 999_998, 999_999, ...aroundBoundaries(jsonAt), ...aroundBoundaries(binaryAt)]

beforeAll(() => {
  execFileSync(process.execPath, [FILL, dataDir, String(APPENDS), String(CHECKPOINT_AT), '--segment-bytes', String(SEGMENT_BYTES), 'big/json:json', 'big/bin:binary'], { stdio: 'inherit' })
}, 120_000)

afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

async function start(): Promise<{ url: string; stop: (signal: NodeJS.Signals) => Promise<void> }> {
  const child = spawnChild(ringstream(['--port', '0', '--data-dir', dataDir]))
  const { url } = await startup(child)
  return {
    url,
    stop: async (signal) => {
      const exited = once(child, 'exit')
      child.kill(signal)
      await exited
    },
  }
}

async function get(url: string, path: string, query: string): Promise<Response> {
  return fetch(`${url}/v1/stream/${path}?${query}`)
}

/** Every sample offset reads back the right append first, and the chunk is whole messages. */
async function checkSamples(url: string, count: number): Promise<void> {
  for (const k of SAMPLES.filter((sample) => sample < count)) {
    const json = await get(url, 'big/json', `offset=${formatOffset(jsonAt[k]!)}`)
    expect(json.status).toBe(200)
    const messages = (await json.json()) as Array<{ i: number }>
    expect(messages[0]).toEqual({ i: k })
    const last = messages.at(-1)!.i
    expect(messages.length).toBe(last - k + 1)
    expect(json.headers.get('stream-next-offset')).toBe(formatOffset(jsonAt[last + 1]!))
    const binary = await get(url, 'big/bin', `offset=${formatOffset(binaryAt[k]!)}`)
    const bytes = await binary.text()
    const first = k + 1 < count ? binaryAppend(k) + binaryAppend(k + 1) : binaryAppend(k)
    expect(bytes.slice(0, first.length)).toBe(first)
    // A position inside a JSON message is not an offset a reader may use.
    expect((await get(url, 'big/json', `offset=${formatOffset(jsonAt[k]! + 1)}`)).status).toBe(400)
  }
}

/** Reads the whole JSON stream in chunks; every message is there once, in order. */
async function checkWholeJson(url: string, count: number): Promise<void> {
  let offset = '-1'
  let next = 0
  for (let request = 0; request < 1000; request++) {
    const res = await get(url, 'big/json', `offset=${offset}`)
    const messages = (await res.json()) as Array<{ i: number }>
    for (const message of messages) if (message.i !== next++) throw new Error(`message ${next - 1} is ${JSON.stringify(message)}`)
    offset = res.headers.get('stream-next-offset')!
    if (res.headers.get('stream-up-to-date') === 'true') break
  }
  expect(next).toBe(count)
}

describe('a stream of a million appends', () => {
  test('recovers from checkpoint + WAL and serves every offset, live reads and forks from old data', async () => {
    const server = await start()
    const head = await fetch(`${server.url}/v1/stream/big/json`, { method: 'HEAD' })
    expect(head.headers.get('stream-next-offset')).toBe(formatOffset(jsonAt[APPENDS]!))
    await checkSamples(server.url, APPENDS)
    await checkWholeJson(server.url, APPENDS)

    // Long-poll from an old offset answers at once with data from there.
    const poll = await get(server.url, 'big/json', `offset=${formatOffset(jsonAt[300_000]!)}&live=long-poll`)
    expect(((await poll.json()) as Array<{ i: number }>)[0]).toEqual({ i: 300_000 })
    // SSE from an old offset: the first data event starts at that message.
    const sse = await get(server.url, 'big/json', `offset=${formatOffset(jsonAt[123_456]!)}&live=sse`)
    const reader = sse.body!.getReader()
    let text = ''
    while (!text.includes('\n\n')) text += new TextDecoder().decode((await reader.read()).value)
    await reader.cancel()
    expect(text).toMatch(/^event: data\ndata: ?\[\{"i":123456\}/)

    // A sub-offset fork inside an old binary append: its prefix, then 3 bytes of append 4321.
    const fork = await fetch(`${server.url}/v1/stream/big/bin-fork`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/octet-stream', 'Stream-Forked-From': '/v1/stream/big/bin', 'Stream-Fork-Offset': formatOffset(binaryAt[4321]!), 'Stream-Fork-Sub-Offset': '3' },
    })
    expect(fork.status).toBe(201)
    const forked = await (await get(server.url, 'big/bin-fork', 'offset=-1')).text()
    expect(forked).toBe(Array.from({ length: 4321 }, (_, i) => binaryAppend(i)).join('') + 'b43')
    await server.stop('SIGTERM')
  }, 120_000)

  test('survives SIGTERM + restart and kill -9 + restart with appends made over HTTP', async () => {
    let server = await start()
    await checkSamples(server.url, APPENDS)
    for (let i = APPENDS; i < APPENDS + 50; i++) {
      const res = await fetch(`${server.url}/v1/stream/big/json`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: jsonMessage(i) })
      expect(res.status).toBe(204)
    }
    await server.stop('SIGTERM')
    server = await start()
    await checkWholeJson(server.url, APPENDS + 50)
    for (let i = APPENDS + 50; i < APPENDS + 100; i++) {
      await fetch(`${server.url}/v1/stream/big/json`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: jsonMessage(i) })
    }
    await server.stop('SIGKILL')
    server = await start()
    await checkSamples(server.url, APPENDS)
    const tail = await get(server.url, 'big/json', `offset=${formatOffset(jsonAt[APPENDS + 40]!)}`)
    expect(await tail.json()).toEqual(Array.from({ length: 60 }, (_, i) => ({ i: APPENDS + 40 + i })))
    await server.stop('SIGTERM')
  }, 120_000)

  test('deleting a stream of many appends removes its data and index files', async () => {
    const server = await start()
    const files = (): string[] => readdirSync(join(dataDir, 'streams'))
    const binaryFiles = ['000000000002.appends', ...Array.from({ length: 8 }, (_, k) => `000000000002.00000${k}.data`)].sort()
    expect(files().filter((name) => name.startsWith('000000000002.')).sort()).toEqual(binaryFiles)
    expect((await fetch(`${server.url}/v1/stream/big/bin-fork`, { method: 'DELETE' })).status).toBe(204)
    expect((await fetch(`${server.url}/v1/stream/big/bin`, { method: 'DELETE' })).status).toBe(204)
    expect((await fetch(`${server.url}/v1/stream/big/bin`)).status).toBe(404)
    // Files go once a checkpoint no longer lists the stream: the shutdown checkpoint here.
    await server.stop('SIGTERM')
    expect(files().filter((name) => name.startsWith('000000000002.'))).toEqual([])
    expect(existsSync(join(dataDir, 'streams', '000000000001.messages'))).toBe(true)
  }, 60_000)
})
