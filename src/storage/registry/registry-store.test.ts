// storage/registry/registry-store.ts entries: every field survives the round trip; damage is detected.

import { crc32 } from 'node:zlib'
import { expect, test } from 'vitest'
import { RegistryCorruptionError, decodeEntry, encodeEntry } from './registry-store.js'
import type { StreamSnapshot } from '../types.js'

const full: StreamSnapshot = {
  id: 7, path: 'a/b', contentType: 'application/json', ttlSeconds: 60, expiresAtMs: 1.5e12, durability: 'fsync', requestKey: '["application/json",60]',
  parentId: 3, base: 12, length: 99, closed: true, softDeleted: true, lastAccessMs: 1.7e12, lastStreamSeq: 'z', producers: [['p', 1, 5]],
  forkRefs: 2, appendCount: 4, appendTail: [40, 41, 99], messageCount: 9, messageTail: [90, 95],
}

test('an entry decodes to what was encoded, undefined fields included', () => {
  expect(decodeEntry(7, encodeEntry(full))).toEqual(full)
  const sparse = { ...full, ttlSeconds: undefined, expiresAtMs: undefined, lastStreamSeq: undefined, messageCount: undefined, messageTail: undefined, appendTail: [] }
  // Without a TTL the last access is not kept: nothing reads it.
  expect(decodeEntry(7, encodeEntry(sparse))).toEqual({ ...sparse, lastAccessMs: 0 })
})

test('a plain create request key is left out of the entry and rebuilt; any other is kept', () => {
  const plain = { ...full, parentId: undefined, contentType: 'text/plain; charset=utf-8', requestKey: '["text/plain",60,1500000000000,null,null]' }
  const entry = encodeEntry(plain)
  expect(entry.toString('utf8', 4)).not.toContain('text/plain\\"')
  expect(entry.length).toBeLessThan(encodeEntry(full).length)
  expect(decodeEntry(7, entry)).toEqual(plain)
  const durable = { ...plain, requestKey: '["text/plain",60,1500000000000,null,"fsync"]' }
  expect(decodeEntry(7, encodeEntry(durable))).toEqual(durable)
})

test('an empty idle stream stores its path, content type and durability, nothing else', () => {
  const idle: StreamSnapshot = {
    id: 3, path: 'idle/1', contentType: 'text/plain', ttlSeconds: undefined, expiresAtMs: undefined, durability: 'fsync', requestKey: '["text/plain",null,null,null,null]',
    parentId: undefined, base: 0, length: 0, closed: false, softDeleted: false, lastAccessMs: 0, lastStreamSeq: undefined, producers: [],
    forkRefs: 0, appendCount: 0, appendTail: [], messageCount: undefined, messageTail: undefined,
  }
  const entry = encodeEntry(idle)
  expect(entry.toString('utf8', 4)).toBe('["idle/1","text/plain","fsync"]')
  expect(decodeEntry(3, entry)).toEqual(idle)
  const json = { ...idle, contentType: 'application/json', requestKey: '["application/json",null,null,null,null]', messageCount: 0, messageTail: [] }
  expect(decodeEntry(3, encodeEntry(json))).toEqual(json)
})

test('index tails are stored as gaps; an entry of registry version 1 has empty ones', () => {
  const entry = encodeEntry(full)
  expect(entry.toString('utf8', 4)).toContain('"fsync",99,4,[40,1,58],9,[90,5],')
  const { appendTail, messageTail, ...rest } = full
  const v1 = JSON.stringify([rest.id, rest.path, rest.contentType, rest.ttlSeconds, rest.expiresAtMs, rest.durability, rest.requestKey, rest.parentId, rest.base,
    rest.length, rest.closed, rest.softDeleted, rest.lastAccessMs, rest.lastStreamSeq, rest.producers, rest.forkRefs, rest.appendCount, rest.messageCount])
  const bytes = Buffer.alloc(4 + v1.length)
  bytes.write(v1, 4)
  bytes.writeUInt32LE(crc32(bytes.subarray(4)), 0)
  expect(appendTail.length + (messageTail?.length ?? 0)).toBeGreaterThan(0)
  expect(decodeEntry(7, bytes)).toEqual({ ...full, appendTail: [], messageTail: [] })
  expect(() => decodeEntry(8, bytes)).toThrow(/does not describe/)
})

test('a flipped bit is a RegistryCorruptionError', () => {
  const entry = encodeEntry(full)
  entry[10]! ^= 1
  expect(() => decodeEntry(7, entry)).toThrow(RegistryCorruptionError)
})

/** An entry whose JSON array is `values` (checksum and all). */
function entryOf(values: unknown[]): Buffer {
  const json = Buffer.from(JSON.stringify(values))
  const bytes = Buffer.alloc(4 + json.length)
  json.copy(bytes, 4)
  bytes.writeUInt32LE(crc32(json), 0)
  return bytes
}

test("a small stream's inline bytes are stored as base64, byte-exact; a length they do not match is damage", () => {
  const bytes = Buffer.from([0, 1, 2, 250, 255, 10, 44, 93])
  const small = { ...full, length: bytes.length, appendTail: [3, 8], messageCount: undefined, messageTail: undefined, inline: bytes }
  const entry = encodeEntry(small)
  const values = JSON.parse(entry.toString('utf8', 4)) as unknown[]
  expect(values[values.length - 1]).toBe(bytes.toString('base64'))
  const decoded = decodeEntry(7, entry)
  expect(Buffer.from(decoded.inline!)).toEqual(bytes)
  expect(decoded).toEqual({ ...small, inline: decoded.inline })
  // Empty inline bytes are not stored at all.
  expect(encodeEntry({ ...small, length: 0, inline: new Uint8Array(0) }).toString('utf8', 4)).not.toContain('""')
  values[3] = bytes.length + 1
  expect(() => decodeEntry(7, entryOf(values))).toThrow(/damaged inline bytes/)
  values[3] = bytes.length
  values[values.length - 1] = 12
  expect(() => decodeEntry(7, entryOf(values))).toThrow(RegistryCorruptionError)
})
