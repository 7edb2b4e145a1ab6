// storage/registry-store.ts entries: every field survives the round trip; damage is detected.

import { expect, test } from 'vitest'
import { RegistryCorruptionError, decodeEntry, encodeEntry } from './registry-store.js'
import type { StreamSnapshot } from './types.js'

const full: StreamSnapshot = {
  id: 7, path: 'a/b', contentType: 'application/json', ttlSeconds: 60, expiresAtMs: 1.5e12, durability: 'fsync', requestKey: '["application/json",60]',
  parentId: 3, base: 12, length: 99, closed: true, softDeleted: true, lastAccessMs: 1.7e12, lastStreamSeq: 'z', producers: [['p', 1, 5]],
  forkRefs: 2, appendCount: 4, messageCount: 9,
}

test('an entry decodes to what was encoded, undefined fields included', () => {
  expect(decodeEntry(7, encodeEntry(full))).toEqual(full)
  const sparse = { ...full, ttlSeconds: undefined, expiresAtMs: undefined, parentId: undefined, lastStreamSeq: undefined, messageCount: undefined }
  expect(decodeEntry(7, encodeEntry(sparse))).toEqual(sparse)
})

test('a flipped bit, a wrong id or a foreign shape is a RegistryCorruptionError', () => {
  const entry = encodeEntry(full)
  entry[10]! ^= 1
  expect(() => decodeEntry(7, entry)).toThrow(RegistryCorruptionError)
  expect(() => decodeEntry(8, encodeEntry(full))).toThrow(/does not describe/)
})
