// Integration: the real @durable-streams/client against a real ringstream server —
// writes, idempotent producers, catch-up, long-poll and SSE live reads, closure and forks.

import { DurableStream, IdempotentProducer } from '@durable-streams/client'
import { describe, expect, test } from 'vitest'
import { uniqueName, useServer } from '../helpers.js'

const live = useServer()

describe('client: byte and JSON streams', () => {
  test('appends and reads text back byte-exact', async () => {
    const stream = await DurableStream.create({ url: live.stream(uniqueName('text')), contentType: 'text/plain' })
    await stream.append('héllo ')
    await stream.append('wörld\n')
    const res = await stream.stream({ live: false })
    expect(await res.text()).toBe('héllo wörld\n')
    expect(res.upToDate).toBe(true)
  })

  test('JSON stream flattens batches and preserves message order', async () => {
    const stream = await DurableStream.create({ url: live.stream(uniqueName('json')), contentType: 'application/json' })
    await stream.append(JSON.stringify({ n: 1 }))
    await stream.append(JSON.stringify({ n: 2, s: 'a,b]' }))
    const res = await stream.stream<{ n: number }>({ live: false })
    expect(await res.json()).toEqual([{ n: 1 }, { n: 2, s: 'a,b]' }])
  })

  test('binary data survives a round trip', async () => {
    const bytes = new Uint8Array(4096).map((_, i) => (i * 7) % 256)
    const stream = await DurableStream.create({ url: live.stream(uniqueName('bin')), contentType: 'application/octet-stream' })
    await stream.append(bytes)
    const res = await stream.stream({ live: false })
    expect(await res.body()).toEqual(bytes)
  })
})

describe('client: idempotent producer', () => {
  test('pipelined batches arrive exactly once and in order', async () => {
    const stream = await DurableStream.create({ url: live.stream(uniqueName('producer')), contentType: 'application/json' })
    const producer = new IdempotentProducer(stream, 'writer-1', { lingerMs: 1, maxInFlight: 4 })
    for (let i = 0; i < 500; i++) producer.append(JSON.stringify({ i }))
    await producer.flush()
    await producer.close(JSON.stringify({ i: 'end' }))
    const res = await stream.stream<{ i: number | string }>({ live: false })
    const items = await res.json()
    expect(items.length).toBe(501)
    expect(items.slice(0, 500).map((item) => item.i)).toEqual([...Array(500).keys()])
    expect(items[500]).toEqual({ i: 'end' })
    expect(res.streamClosed).toBe(true)
  })

  test('a restarted producer fences the old epoch', async () => {
    const url = live.stream(uniqueName('fence'))
    const stream = await DurableStream.create({ url, contentType: 'text/plain' })
    const first = new IdempotentProducer(stream, 'p', { epoch: 0 })
    first.append('a')
    await first.flush()
    const second = new IdempotentProducer(stream, 'p', { epoch: 1 })
    second.append('b')
    await second.flush()
    const zombie = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'text/plain', 'Producer-Id': 'p', 'Producer-Epoch': '0', 'Producer-Seq': '1' },
      body: 'zombie',
    })
    expect(zombie.status).toBe(403)
    expect(zombie.headers.get('producer-epoch')).toBe('1')
    expect(await (await stream.stream({ live: false })).text()).toBe('ab')
  })
})

describe('client: live reads', () => {
  test('long-poll subscriber receives data appended after it started', async () => {
    const stream = await DurableStream.create({ url: live.stream(uniqueName('lp')), contentType: 'text/plain' })
    const res = await stream.stream({ live: 'long-poll', offset: 'now' })
    const received: string[] = []
    const done = new Promise<void>((resolve) => {
      res.subscribeText((chunk) => {
        if (chunk.text.length > 0) received.push(chunk.text)
        if (received.join('') === 'onetwo') resolve()
      })
    })
    await stream.append('one')
    await new Promise((r) => setTimeout(r, 50))
    await stream.append('two')
    await done
    res.cancel()
    expect(received.join('')).toBe('onetwo')
  })

  test('SSE subscriber gets JSON batches and sees the stream close', async () => {
    const stream = await DurableStream.create({ url: live.stream(uniqueName('sse')), contentType: 'application/json' })
    await stream.append(JSON.stringify({ k: 'before' }))
    const res = await stream.stream<{ k: string }>({ live: 'sse', offset: '-1' })
    const items: string[] = []
    const sawAll = new Promise<void>((resolve) => {
      res.subscribeJson((batch) => {
        for (const item of batch.items) items.push(item.k)
        if (items.length === 3) resolve()
      })
    })
    await stream.append(JSON.stringify({ k: 'during-1' }))
    await stream.append(JSON.stringify({ k: 'during-2' }))
    await sawAll
    await stream.close()
    await res.closed
    expect(items).toEqual(['before', 'during-1', 'during-2'])
    expect(res.streamClosed).toBe(true)
  })

  test('SSE on a binary stream delivers base64-decoded bytes', async () => {
    const stream = await DurableStream.create({ url: live.stream(uniqueName('sse-bin')), contentType: 'application/octet-stream' })
    const payload = new Uint8Array([0, 10, 13, 255, 128, 1])
    const res = await stream.stream({ live: 'sse', offset: 'now' })
    const got = new Promise<Uint8Array>((resolve) => {
      res.subscribeBytes((chunk) => {
        if (chunk.data.length > 0) resolve(chunk.data)
      })
    })
    await stream.append(payload)
    expect(await got).toEqual(payload)
    res.cancel()
  })
})

describe('client: forks', () => {
  test('a fork reads inherited data then its own, isolated from the source', async () => {
    const sourcePath = `/v1/stream/${uniqueName('src')}`
    const source = await DurableStream.create({ url: `${live.url}${sourcePath}`, contentType: 'text/plain' })
    await source.append('shared|')
    const forkUrl = live.stream(uniqueName('fork'))
    const created = await fetch(forkUrl, { method: 'PUT', headers: { 'Stream-Forked-From': sourcePath } })
    expect(created.status).toBe(201)
    const fork = new DurableStream({ url: forkUrl })
    await fork.append('fork-only', { contentType: 'text/plain' })
    await source.append('source-only')
    expect(await (await fork.stream({ live: false })).text()).toBe('shared|fork-only')
    expect(await (await source.stream({ live: false })).text()).toBe('shared|source-only')
  })
})

describe('SSE fan-out', () => {
  test('many subscribers at the same offset each get every event exactly once', async () => {
    const stream = await DurableStream.create({ url: live.stream(uniqueName('fanout')), contentType: 'application/json' })
    const subscribers = await Promise.all(Array.from({ length: 8 }, () => stream.stream<{ n: number }>({ live: 'sse', offset: 'now' })))
    const received = subscribers.map(() => [] as number[])
    const done = subscribers.map(
      (res, i) =>
        new Promise<void>((resolve) => {
          res.subscribeJson((batch) => {
            for (const item of batch.items) received[i]!.push(item.n)
            if (received[i]!.length >= 3) resolve()
          })
        }),
    )
    for (const n of [1, 2, 3]) await stream.append(JSON.stringify({ n }))
    await Promise.all(done)
    for (const res of subscribers) res.cancel()
    for (const got of received) expect(got).toEqual([1, 2, 3])
  })
})
