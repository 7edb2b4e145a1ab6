// storage/registry/registry-lmdb.ts on a real disk: commits, lookups by path and id, the expiry
// sweep's list (streams that can expire only), and the in-place upgrade of version 1.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { open } from 'lmdb'
import { afterEach, expect, test } from 'vitest'
import { LmdbRegistry } from './registry-lmdb.js'
import { encodeEntry } from './registry-store.js'
import type { StreamSnapshot } from '../types.js'

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'rs-lmdb-'))
  dirs.push(dir)
  return dir
}

function snapshot(id: number, extra: Partial<StreamSnapshot> = {}): StreamSnapshot {
  return {
    id, path: `s/${id}`, contentType: 'text/plain', ttlSeconds: undefined, expiresAtMs: undefined, durability: 'fsync', requestKey: 'k',
    parentId: undefined, base: 0, length: 3, closed: false, softDeleted: false, lastAccessMs: 0, lastStreamSeq: undefined, producers: [],
    forkRefs: 0, appendCount: 1, appendTail: [3], messageCount: undefined, messageTail: undefined, ...extra,
  }
}

const meta = { lsn: 10, nextStreamId: 100, segmentBytes: 1 << 20 }

test('commits are found by id and path; only streams that can expire are listed for the sweep', async () => {
  const dir = tempDir()
  const store = await LmdbRegistry.open(dir)
  const puts = [snapshot(1), snapshot(2, { ttlSeconds: 60 }), snapshot(3), snapshot(4, { expiresAtMs: 5 }), snapshot(5, { ttlSeconds: 1 })]
  await store.commit(puts, [], meta)
  expect(store.get(3)).toEqual(puts[2])
  expect(store.idOf('s/4')).toBe(4)
  expect(store.expiringAfter(0, 10)).toEqual([2, 4, 5])
  expect(store.expiringAfter(2, 1)).toEqual([4])
  await store.commit([snapshot(3, { length: 9 })], [{ id: 4, path: 's/4' }], { ...meta, lsn: 20 })
  await store.close()
  const again = await LmdbRegistry.open(dir)
  expect(again.meta).toEqual({ ...meta, lsn: 20 })
  expect(again.get(3)?.length).toBe(9)
  expect(again.idOf('s/3')).toBe(3)
  expect(again.get(4)).toBeUndefined()
  expect(again.idOf('s/4')).toBeUndefined()
  expect(again.expiringAfter(0, 10)).toEqual([2, 5])
  await again.close()
})

test('a version 1 registry (no expiring list) is upgraded in place when opened', async () => {
  const dir = tempDir()
  // Version 1's layout, written with lmdb directly: streams, paths and meta only.
  const root = open({ path: dir, compression: false })
  const streams = root.openDB<Buffer, number>('streams', { encoding: 'binary', keyEncoding: 'uint32' })
  const paths = root.openDB<number, string>('paths', {})
  const metaDb = root.openDB('meta', {})
  await root.transaction(() => {
    for (const saved of [snapshot(1), snapshot(2, { ttlSeconds: 60 }), snapshot(3, { expiresAtMs: 9 })]) {
      void streams.put(saved.id, encodeEntry(saved))
      void paths.put(saved.path, saved.id)
    }
    void metaDb.put('checkpoint', { format: 'ringstream-registry', version: 1, ...meta })
  })
  await root.close()
  const store = await LmdbRegistry.open(dir)
  expect(store.meta).toEqual(meta)
  expect(store.expiringAfter(0, 10)).toEqual([2, 3])
  expect(store.get(1)?.path).toBe('s/1')
  await store.close()
})

test('a registry of an unknown version is refused by name', async () => {
  const dir = tempDir()
  const root = open({ path: dir, compression: false })
  await root.openDB('meta', {}).put('checkpoint', { format: 'ringstream-registry', version: 7, ...meta })
  await root.close()
  await expect(LmdbRegistry.open(dir)).rejects.toThrow(/version 7.*reads ringstream-registry versions 1 to 3/)
})

test('a version 2 registry is read as it is and is version 3 from its next commit, inline bytes included', async () => {
  const dir = tempDir()
  const root = open({ path: dir, compression: false })
  const streams = root.openDB<Buffer, number>('streams', { encoding: 'binary', keyEncoding: 'uint32' })
  const metaDb = root.openDB('meta', {})
  await root.transaction(() => {
    void streams.put(1, encodeEntry(snapshot(1)))
    void metaDb.put('checkpoint', { format: 'ringstream-registry', version: 2, ...meta })
  })
  await root.close()
  const store = await LmdbRegistry.open(dir)
  expect(store.get(1)?.path).toBe('s/1')
  expect(store.get(1)?.inline).toBeUndefined()
  const bytes = Buffer.from('small;')
  await store.commit([snapshot(2, { length: bytes.length, inline: bytes })], [], meta)
  await store.close()
  const again = await LmdbRegistry.open(dir)
  expect(Buffer.from(again.get(2)!.inline!).toString()).toBe('small;')
  await again.close()
  const raw = open({ path: dir, compression: false })
  expect((raw.openDB('meta', {}).get('checkpoint') as { version: number }).version).toBe(3)
  await raw.close()
})
