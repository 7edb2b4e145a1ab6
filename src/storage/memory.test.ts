// Unit tests for storage/memory.ts: a memory log's chunks (appends and reads across chunk
// boundaries, truncation keeping earlier views intact).

import { describe, expect, test } from 'vitest'
import { MemoryLog } from './memory.js'

const MiB = 1 << 20

function pattern(length: number, seed: number): Buffer {
  const bytes = Buffer.allocUnsafe(length)
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + seed) & 0xff
  return bytes
}

const joined = (parts: Uint8Array[]): Buffer => Buffer.concat(parts)

describe('MemoryLog', () => {
  test('appends crossing chunk boundaries read back byte for byte, from any range', () => {
    const log = new MemoryLog(false)
    const written: Buffer[] = []
    // 700 KiB appends: most cross a 1 MiB chunk boundary somewhere.
    for (let i = 0; i < 7; i++) {
      const bytes = pattern(700 * 1024 + i, i)
      log.append(bytes)
      written.push(bytes)
    }
    const all = Buffer.concat(written)
    expect(log.length).toBe(all.length)
    expect(joined(log.read(0, all.length)).equals(all)).toBe(true)
    for (const [from, to] of [[MiB - 5, MiB + 5], [3 * MiB - 1, 3 * MiB], [123, 4 * MiB + 77], [2 * MiB, 2 * MiB]]) {
      expect(joined(log.read(from!, to!)).equals(all.subarray(from, to))).toBe(true)
    }
    expect(log.appends.count).toBe(7)
  })

  test('a truncated log keeps the views read before, and appends after the cut', () => {
    const log = new MemoryLog(false)
    log.append(pattern(MiB + 100, 1))
    const before = joined(log.read(MiB, MiB + 100))
    const view = log.read(MiB + 10, MiB + 100)
    log.truncate(MiB + 10)
    log.append(pattern(500, 2))
    expect(joined(view).equals(before.subarray(10))).toBe(true)
    expect(joined(log.read(MiB, MiB + 10)).equals(before.subarray(0, 10))).toBe(true)
    expect(joined(log.read(MiB + 10, MiB + 510)).equals(pattern(500, 2))).toBe(true)
    log.truncate(0)
    expect(log.length).toBe(0)
    log.append(pattern(10, 3))
    expect(joined(log.read(0, 10)).equals(pattern(10, 3))).toBe(true)
  })

  test('many small appends to a short stream take small chunks and read back', () => {
    const log = new MemoryLog(true)
    const written: Buffer[] = []
    for (let i = 0; i < 1000; i++) {
      const bytes = Buffer.from(`${i},`)
      log.append(bytes, [bytes.length])
      written.push(bytes)
    }
    expect(joined(log.read(0, log.length)).equals(Buffer.concat(written))).toBe(true)
    expect(log.messages!.count).toBe(1000)
  })
})
