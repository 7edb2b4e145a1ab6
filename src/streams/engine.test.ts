// Unit tests for the stream engine on memory storage: fork position arithmetic, JSON
// boundaries, sub-offsets, soft delete with cascade cleanup, expiry with an injected clock.

import { describe, expect, test } from 'vitest'
import { parseContentType } from '../protocol/headers.js'
import { errorCode } from '../../test/expect-error.js'
import { MemoryStorage } from '../storage/memory.js'
import { type CreateRequest, Engine } from './engine.js'

const TEXT = parseContentType('text/plain')
const JSON_TYPE = parseContentType('application/json')

function engine(now: () => number = Date.now): Engine {
  const e = new Engine({ storage: new MemoryStorage(), defaultDurability: 'memory', expirySweepMs: 60_000, now })
  e.registry.stopSweeping()
  return e
}

function create(e: Engine, path: string, overrides: Partial<CreateRequest> = {}): void {
  e.create({ path, contentType: TEXT, ttlSeconds: undefined, expiresAtMs: undefined, closed: false, body: new Uint8Array(), fork: undefined, durability: undefined, ...overrides })
}

function append(e: Engine, path: string, text: string, contentType = TEXT): void {
  e.append({ path, contentType, body: Buffer.from(text), close: false, producer: undefined, streamSeq: undefined })
}

async function readAll(e: Engine, path: string, from = 0): Promise<string> {
  const stream = e.openForRead(path)
  return Buffer.concat(await stream.read(from, stream.tail)).toString()
}


describe('forks', () => {
  test('reads stitch inherited and own bytes; source appends stay invisible', async () => {
    const e = engine()
    create(e, 'src', { body: Buffer.from('AB') })
    create(e, 'fork', { fork: { sourcePath: 'src', position: undefined, subOffset: 0 } })
    append(e, 'fork', 'C')
    append(e, 'src', 'X')
    expect(await readAll(e, 'fork')).toBe('ABC')
    expect(await readAll(e, 'fork', 1)).toBe('BC')
    expect(await readAll(e, 'src')).toBe('ABX')
  })

  test('sub-offsets compose across a chain of forks', async () => {
    const e = engine()
    create(e, 'l0', { body: Buffer.from('abcdef') })
    create(e, 'l1', { fork: { sourcePath: 'l0', position: 0, subOffset: 4 } })
    create(e, 'l2', { fork: { sourcePath: 'l1', position: 0, subOffset: 2 } })
    expect(await readAll(e, 'l1')).toBe('abcd')
    expect(await readAll(e, 'l2')).toBe('ab')
    expect(errorCode(() => create(e, 'l3', { fork: { sourcePath: 'l1', position: 0, subOffset: 5 } }))).toBe('BAD_REQUEST')
  })

  test('JSON sub-offsets count messages and keep boundaries for later reads', async () => {
    const e = engine()
    create(e, 'j', { contentType: JSON_TYPE, body: Buffer.from('[1,{"a":[2,3]},"x,y"]') })
    create(e, 'jf', { contentType: JSON_TYPE, fork: { sourcePath: 'j', position: 0, subOffset: 2 } })
    const fork = e.openForRead('jf')
    expect(Buffer.concat(await fork.read(0, fork.tail)).toString()).toBe('1,{"a":[2,3]},')
    expect(fork.isBoundary(2)).toBe(true)
    expect(fork.isBoundary(3)).toBe(false)
  })

  test('JSON reads are cut at message boundaries across the fork base', async () => {
    const e = engine()
    create(e, 'j', { contentType: JSON_TYPE, body: Buffer.from('["aa","bb"]') })
    create(e, 'jf', { contentType: JSON_TYPE, fork: { sourcePath: 'j', position: undefined, subOffset: 0 } })
    append(e, 'jf', '"cc"', JSON_TYPE)
    const fork = e.openForRead('jf')
    const chunks: string[] = []
    for (let at = 0; at < fork.tail; ) {
      const read = await e.read(fork, at, 4)
      chunks.push(Buffer.concat(read.parts).toString())
      at = read.end
    }
    expect(chunks).toEqual(['"aa",', '"bb",', '"cc",'])
  })

  test('deleting a referenced source soft-deletes it; the last fork going frees the chain', async () => {
    const e = engine()
    create(e, 'a', { body: Buffer.from('1') })
    create(e, 'b', { fork: { sourcePath: 'a', position: undefined, subOffset: 0 } })
    create(e, 'c', { fork: { sourcePath: 'b', position: undefined, subOffset: 0 } })
    e.delete('a')
    e.delete('b')
    expect(errorCode(() => e.peek('a'))).toBe('GONE')
    expect(errorCode(() => create(e, 'a'))).toBe('CONFIG_MISMATCH')
    expect(await readAll(e, 'c')).toBe('1')
    e.delete('c')
    expect(errorCode(() => e.peek('a'))).toBe('NOT_FOUND')
    expect(errorCode(() => e.peek('b'))).toBe('NOT_FOUND')
    expect(e.registry.size).toBe(0)
  })
})

describe('expiry', () => {
  test('sliding TTL is renewed by reads and writes but not by peeks', async () => {
    let now = 0
    const e = engine(() => now)
    create(e, 's', { ttlSeconds: 10 })
    now = 9_000
    e.openForRead('s')
    now = 18_000
    e.peek('s')
    now = 19_500
    expect(errorCode(() => e.peek('s'))).toBe('NOT_FOUND')
  })

  test('an expired source with a live fork turns 410 while the fork keeps reading', async () => {
    let now = 0
    const e = engine(() => now)
    create(e, 'src', { ttlSeconds: 1, body: Buffer.from('kept') })
    create(e, 'fork', { ttlSeconds: 100, fork: { sourcePath: 'src', position: undefined, subOffset: 0 } })
    now = 2_000
    expect(errorCode(() => e.peek('src'))).toBe('GONE')
    expect(await readAll(e, 'fork')).toBe('kept')
  })
})
