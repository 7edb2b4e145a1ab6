// storage/registry-store.ts entries: every field survives the round trip; damage is detected.

import { crc32 } from 'node:zlib'
import { expect, test } from 'vitest'
import { RegistryCorruptionError, decodeEntry, encodeEntry } from './registry-store.js'
import type { StreamSnapshot } from './types.js'

const full: StreamSnapshot = {
  id: 7, path: 'a/b', contentType: 'application/json', ttlSeconds: 60, expiresAtMs: 1.5e12, durability: 'fsync', requestKey: '["application/json",60]',
  parentId: 3, base: 12, length: 99, closed: true, softDeleted: true, lastAccessMs: 1.7e12, lastStreamSeq: 'z', producers: [['p', 1, 5]],
  forkRefs: 2, appendCount: 4, appendTail: [40, 41, 99], messageCount: 9, messageTail: [90, 95],
}

test('an entry decodes to what was encoded, undefined fields included', () => {
  expect(decodeEntry(7, encodeEntry(full))).toEqual(full)
  const sparse = { ...full, ttlSeconds: undefined, expiresAtMs: undefined, parentId: undefined, lastStreamSeq: undefined, messageCount: undefined, messageTail: undefined, appendTail: [] }
  expect(decodeEntry(7, encodeEntry(sparse))).toEqual(sparse)
})

test('index tails are stored as gaps; an entry from before tails existed has empty ones', () => {
  const entry = encodeEntry(full)
  expect(entry.toString('utf8', 4)).toContain(',4,9,[40,1,58],[90,5]]')
  const legacy = JSON.stringify(JSON.parse(entry.toString('utf8', 4)).slice(0, -2))
  const bytes = Buffer.alloc(4 + legacy.length)
  bytes.write(legacy, 4)
  bytes.writeUInt32LE(crc32(bytes.subarray(4)), 0)
  expect(decodeEntry(7, bytes)).toEqual({ ...full, appendTail: [], messageTail: [] })
})

test('a flipped bit, a wrong id or a foreign shape is a RegistryCorruptionError', () => {
  const entry = encodeEntry(full)
  entry[10]! ^= 1
  expect(() => decodeEntry(7, entry)).toThrow(RegistryCorruptionError)
  expect(() => decodeEntry(8, encodeEntry(full))).toThrow(/does not describe/)
})
