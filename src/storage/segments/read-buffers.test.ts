// storage/segments/read-buffers.ts: the pool never holds more than its limit, a reader waits for a
// lent buffer once all are out, and a buffer comes back only after the turn it was lent in.

import { describe, expect, test } from 'vitest'
import { ReadBuffers } from './read-buffers.js'

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

describe('ReadBuffers', () => {
  test('past the limit a reader waits until a lent buffer is reclaimed, a turn after give()', async () => {
    const pool = new ReadBuffers(1024, 2)
    const first = pool.take(100) as Buffer
    const second = pool.take(1024) as Buffer
    expect(first).toBeInstanceOf(Buffer)
    expect(second).toBeInstanceOf(Buffer)
    const third = pool.take(10)
    expect(third).toBeInstanceOf(Promise)
    let got: Buffer | undefined
    void (third as Promise<Buffer>).then((buffer) => (got = buffer))
    pool.give(second)
    await Promise.resolve()
    expect(got).toBeUndefined()
    await nextTurn()
    expect(got).toBe(second)
    expect(pool.size).toBe(2)
  })

  test('a reclaimed buffer with no one waiting is reused; a read larger than the pool\'s buffers gets its own', async () => {
    const pool = new ReadBuffers(1024, 2)
    const lent = pool.take(512) as Buffer
    pool.give(lent)
    await nextTurn()
    expect(pool.take(512)).toBe(lent)
    const large = pool.take(4096) as Buffer
    expect(large.length).toBe(4096)
    pool.give(large)
    await nextTurn()
    expect(pool.size).toBe(1)
    expect(pool.take(1024)).not.toBe(large)
  })
})
