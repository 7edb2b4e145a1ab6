// The registry store and streams that leave memory, on the fault-injecting simulator: a
// real server (HTTP and all) with room for only a few idle streams in memory, so nearly
// every request loads its stream from the store again. Producers, Stream-Seq, forks, soft
// deletes, TTLs and closes must behave as if every stream stayed; checkpoints store only
// what changed; a crash during a checkpoint, a torn index file and a damaged registry
// entry are recovered from or refused loudly.

import { describe, expect, test } from 'vitest'
import { SimIo } from '../src/io/sim.js'
import { parseContentType } from '../src/protocol/headers.js'
import { DurableStorage } from '../src/storage/durable.js'
import { IoRegistry } from '../src/storage/registry/registry-store.js'
import { Engine } from '../src/streams/engine.js'
import { recoveryTarget } from '../src/streams/recovery.js'
import { DATA, post, put, sleep, text, url, useSimServers } from './sim-server.js'

const REGISTRY = `${DATA}/registry/registry.json`
const boot = useSimServers({ residentStreamsMax: 2 })
const producer = (seq: number): Record<string, string> => ({ 'Producer-Id': 'p', 'Producer-Epoch': '0', 'Producer-Seq': String(seq) })

/** Stored entries by stream path, as the simulator's registry file holds them. */
function storedPaths(io: SimIo): string[] {
  const saved = JSON.parse(Buffer.from(io.contents(REGISTRY)!).toString()) as { entries: Array<[number, string]> }
  // An entry is crc32 ‖ JSON array whose first value is the path.
  return saved.entries.map(([, entry]) => (JSON.parse(Buffer.from(entry, 'base64').subarray(4).toString()) as string[])[0]!).sort()
}

describe('streams that leave memory', () => {
  test('producers, Stream-Seq, closes and content types hold across evictions and restarts', async () => {
    const io = new SimIo()
    const server = await boot(io)
    for (let i = 0; i < 12; i++) {
      expect((await put(server, `s${i}`, { 'Content-Type': i % 2 ? 'application/json' : 'text/plain' })).status).toBe(201)
      const body = i % 2 ? `{"n":${i}}` : `n${i};`
      const type = i % 2 ? 'application/json' : 'text/plain'
      expect((await post(server, `s${i}`, body, { ...producer(0), 'Content-Type': type, 'Stream-Seq': 'a' })).status).toBe(200)
    }
    // The checkpoint stores all twelve; afterwards at most two stay in memory.
    await server.checkpoint()
    expect(storedPaths(io)).toHaveLength(12)
    for (let i = 0; i < 12; i++) {
      const type = i % 2 ? 'application/json' : 'text/plain'
      const body = i % 2 ? `{"n":${i}}` : `n${i};`
      // A retry is a duplicate, a gap is refused, an old Stream-Seq conflicts: state came back.
      expect((await post(server, `s${i}`, body, { ...producer(0), 'Content-Type': type })).status).toBe(204)
      expect((await post(server, `s${i}`, body, { ...producer(5), 'Content-Type': type })).status).toBe(409)
      expect((await post(server, `s${i}`, body, { 'Content-Type': type, 'Stream-Seq': 'a' })).status).toBe(409)
      expect((await post(server, `s${i}`, body, { 'Content-Type': 'application/octet-stream' })).status).toBe(409)
    }
    expect((await post(server, 's0', '', { 'Stream-Closed': 'true' })).status).toBe(204)
    await server.checkpoint()
    const again = await boot(io.crashed())
    expect((await post(again, 's0', 'more')).status).toBe(409)
    expect(await text(again, 's0')).toBe('n0;')
    expect(await text(again, 's11')).toBe('[{"n":11}]')
    expect((await post(again, 's3', '{"n":3}', { ...producer(0), 'Content-Type': 'application/json' })).status).toBe(204)
  })

  test('forks read through evicted sources; soft deletes and cascades are stored', async () => {
    const io = new SimIo()
    const server = await boot(io)
    await put(server, 'src', { 'Content-Type': 'text/plain' }, 'A')
    await put(server, 'mid', { 'Stream-Forked-From': '/v1/stream/src' })
    await post(server, 'mid', 'B')
    await put(server, 'leaf', { 'Stream-Forked-From': '/v1/stream/mid' })
    await post(server, 'leaf', 'C')
    for (let i = 0; i < 6; i++) await put(server, `filler${i}`)
    await server.checkpoint()
    expect(await text(server, 'leaf')).toBe('ABC')
    expect((await fetch(url(server, 'src'), { method: 'DELETE' })).status).toBe(204)
    expect((await put(server, 'src')).status).toBe(409)
    await server.checkpoint()
    for (let i = 0; i < 6; i++) await fetch(url(server, `filler${i}`), { method: 'HEAD' })
    expect((await fetch(url(server, 'src'), { method: 'HEAD' })).status).toBe(410)
    expect(await text(server, 'mid')).toBe('AB')
    const disk = io.crashed()
    const second = await boot(disk)
    expect((await fetch(url(second, 'src'), { method: 'HEAD' })).status).toBe(410)
    expect((await fetch(url(second, 'mid'), { method: 'DELETE' })).status).toBe(204)
    expect((await fetch(url(second, 'leaf'), { method: 'DELETE' })).status).toBe(204)
    await second.checkpoint()
    // The cascade removed all three from the store, and their files with them.
    expect(storedPaths(disk).filter((path) => !path.startsWith('filler'))).toEqual([])
    expect((await disk.list(`${DATA}/streams`)).filter((name) => /^00000000000[123]\./.test(name))).toEqual([])
    const cut = disk.crashed()
    const third = await boot(cut)
    for (const path of ['src', 'mid', 'leaf']) expect((await fetch(url(third, path), { method: 'HEAD' })).status).toBe(404)
    expect((await put(third, 'src')).status).toBe(201)
  })

  test('a checkpoint stores only the streams that changed since the last one', async () => {
    const io = new SimIo()
    let puts = 0
    const server = await boot(io)
    for (let i = 0; i < 20; i++) await put(server, `c${i}`)
    await server.checkpoint()
    const before = Buffer.from(io.contents(REGISTRY)!).toString()
    await post(server, 'c7', 'x')
    await server.checkpoint()
    const after = JSON.parse(Buffer.from(io.contents(REGISTRY)!).toString()) as { entries: Array<[number, string]> }
    const old = new Map((JSON.parse(before) as { entries: Array<[number, string]> }).entries)
    for (const [id, entry] of after.entries) if (old.get(id) !== entry) puts++
    expect(puts).toBe(1)
  })

  test('an expired stream that is not in memory is found by the stored sweep and removed', async () => {
    const io = new SimIo()
    const server = await boot(io, { expirySweepMs: 50 })
    await put(server, 'short', { 'Content-Type': 'text/plain', 'Stream-TTL': '1' }, 'x')
    for (let i = 0; i < 5; i++) await put(server, `keep${i}`)
    await server.checkpoint()
    await new Promise((resolve) => setTimeout(resolve, 1300))
    await server.checkpoint()
    expect(storedPaths(io)).not.toContain('short')
  })
})

describe('expiry of a stream with many segments', () => {
  test('the expiry sweep removes it, and the next checkpoint every one of its files', async () => {
    const io = new SimIo()
    // 4 KiB segments: 20 KiB of appends span five data files and an index page.
    const server = await boot(io, { segmentBytes: 4096, expirySweepMs: 50 })
    await put(server, 'short', { 'Content-Type': 'text/plain', 'Stream-TTL': '1' })
    await put(server, 'stays', { 'Content-Type': 'text/plain' }, 'x'.repeat(2000))
    for (let i = 0; i < 600; i++) await post(server, 'short', `${String(i).padStart(33, '.')};`)
    await server.checkpoint()
    const files = (await filesOf(io, 1)).sort()
    expect(files).toEqual(['000000000001.000000.data', '000000000001.000001.data', '000000000001.000002.data', '000000000001.000003.data', '000000000001.000004.data', '000000000001.appends'])
    // No request touches it: the sweep finds it expired.
    await sleep(1500)
    await server.checkpoint()
    expect(await filesOf(io, 1)).toEqual([])
    expect(storedPaths(io)).toEqual(['stays'])
    expect((await fetch(url(server, 'short'), { method: 'HEAD' })).status).toBe(404)
    expect(await text(server, 'stays')).toBe('x'.repeat(2000))
  })
})

describe('expiry of removed forks', () => {
  test('a fork and its source that expired and left memory are never loaded again from entries the next checkpoint removes', async () => {
    const io = new SimIo()
    const server = await boot(io, { expirySweepMs: 50 })
    await put(server, 'src', { 'Content-Type': 'text/plain', 'Stream-TTL': '1' }, 'abc')
    await put(server, 'fork', { 'Content-Type': 'text/plain', 'Stream-TTL': '1', 'Stream-Forked-From': '/v1/stream/src' })
    await server.checkpoint()
    // Both expire; the sweeps remove them from memory, and the stored sweep walks their
    // stored (not yet removed) entries: loading the fork would need its removed source.
    await new Promise((resolve) => setTimeout(resolve, 1600))
    expect((await fetch(url(server, 'fork'))).status).toBe(404)
    expect((await fetch(url(server, 'src'))).status).toBe(404)
    await server.checkpoint()
    const later = await boot(io.crashed())
    expect((await fetch(url(later, 'fork'))).status).toBe(404)
    expect((await fetch(url(later, 'src'))).status).toBe(404)
  })
})

describe('crashes and damage', () => {
  test('a crash during an incremental checkpoint (before the store commits) recovers from the WAL', async () => {
    const io = new SimIo()
    const server = await boot(io)
    await put(server, 'k', { 'Content-Type': 'text/plain' }, 'base;')
    for (let i = 0; i < 5; i++) await put(server, `other${i}`)
    await server.checkpoint()
    await post(server, 'k', 'one;')
    io.failNext('rename', 'EIO')
    await expect(server.checkpoint()).rejects.toThrow()
    await post(server, 'k', 'two;')
    const after = await boot(io.crashed())
    expect(await text(after, 'k')).toBe('base;one;two;')
    // The failed checkpoint's changes were kept and are stored by the next one.
    await server.checkpoint()
    const later = await boot(io.crashed())
    expect(later.recovery!.records).toBe(0)
    expect(await text(later, 'k')).toBe('base;one;two;')
  })

  test('a checkpoint of many changed streams makes their files durable with one syncFs; a failed one fails the checkpoint, and the next stores it all', async () => {
    const io = new SimIo()
    const server = await boot(io)
    const paths = Array.from({ length: 20 }, (_, i) => `many${i}`)
    // Past the inline limit: these streams have data files.
    const first = (path: string): string => `${path}:a;`.padEnd(1100, '.')
    for (const path of paths) await put(server, path, { 'Content-Type': 'text/plain' }, first(path))
    await server.checkpoint()
    for (const path of paths) await post(server, path, `${path}:b;`)
    // 20 changed streams: above the threshold, the files are synced by syncFs, not one by one.
    io.failNext('syncFs', 'EIO')
    await expect(server.checkpoint()).rejects.toThrow(/EIO/)
    const crashed = await boot(io.crashed())
    expect(crashed.recovery!.records).toBeGreaterThan(0)
    for (const path of paths) expect(await text(crashed, path)).toBe(`${first(path)}${path}:b;`)
    await server.checkpoint()
    // Nothing left in the WAL to replay: the data files alone must hold every byte.
    const later = await boot(io.crashed())
    expect(later.recovery!.records).toBe(0)
    for (const path of paths) expect(await text(later, path)).toBe(`${first(path)}${path}:b;`)
  })

  test('index entries written after the checkpoint and torn by the crash are rebuilt from the WAL', async () => {
    const io = new SimIo()
    const server = await boot(io)
    await put(server, 'j', { 'Content-Type': 'application/json' })
    for (let i = 0; i < 10; i++) await post(server, 'j', `{"i":${i}}`, { 'Content-Type': 'application/json' })
    await server.checkpoint()
    // Past a page of entries (512): the index files get their first page after the checkpoint.
    const total = 600
    for (let i = 10; i < total; i++) await post(server, 'j', `{"i":${i}}`, { 'Content-Type': 'application/json' })
    await new Promise((resolve) => setTimeout(resolve, 1200))
    expect(io.contents(`${DATA}/streams/000000000001.messages`)?.length).toBe(4096)
    // Unsynced index writes since the checkpoint: a power cut keeps a torn few bytes of them.
    const after = await boot(io.crashed(13))
    const all = (await (await fetch(url(after, 'j'))).json()) as Array<{ i: number }>
    expect(all.map((m) => m.i)).toEqual(Array.from({ length: total }, (_, i) => i))
    const offset = (await fetch(url(after, 'j'), { method: 'HEAD' })).headers.get('stream-next-offset')!
    const position = Number(offset.split('_')[1])
    // Message boundaries are offsets and nothing in between is: around the checkpoint and the page end.
    let at = 0
    for (let i = 0; i < total; i++) {
      if (i < 20 || (i >= 505 && i < 520) || i >= total - 5) {
        const res = await fetch(`${url(after, 'j')}?offset=0000000000000000_${String(at).padStart(16, '0')}`)
        expect(res.status).toBe(200)
        expect(((await res.json()) as Array<{ i: number }>)[0]!.i).toBe(i)
        expect((await fetch(`${url(after, 'j')}?offset=0000000000000000_${String(at + 1).padStart(16, '0')}`)).status).toBe(400)
      }
      at += `{"i":${i}},`.length
    }
    expect(at).toBe(position)
  })

  test('a stream of a few appends keeps its index in its registry entry; full pages go to the index file', async () => {
    const io = new SimIo()
    const server = await boot(io)
    await put(server, 'few', { 'Content-Type': 'application/json' })
    await put(server, 'many')
    for (let i = 0; i < 3; i++) await post(server, 'few', `[${i},${i}]`, { 'Content-Type': 'application/json' })
    for (let i = 0; i < 515; i++) await post(server, 'many', `${i % 10}`)
    await server.checkpoint()
    // Three small appends: no file at all (bytes and index in the registry entry). 515: one
    // full index page (512 entries) in the index file, the rest stored beside it.
    const files = await io.list(`${DATA}/streams`)
    expect(files.filter((name) => name.startsWith('000000000001.'))).toEqual([])
    expect(files).toContain('000000000002.000000.data')
    expect(io.contents(`${DATA}/streams/000000000002.appends`)?.length).toBe(4096)
    const again = await boot(io.crashed())
    const messages = (await (await fetch(url(again, 'few'))).json()) as number[]
    expect(messages).toEqual([0, 0, 1, 1, 2, 2])
    // Every message end is an offset (each append holds two), and one inside a message is not.
    for (const [at, first] of [[0, 0], [2, 0], [4, 1], [6, 1], [8, 2], [10, 2]] as const) {
      const res = await fetch(`${url(again, 'few')}?offset=0000000000000000_${String(at).padStart(16, '0')}`)
      expect(res.status).toBe(200)
      expect(((await res.json()) as number[])[0]).toBe(first)
    }
    expect((await fetch(`${url(again, 'few')}?offset=0000000000000000_${String(1).padStart(16, '0')}`)).status).toBe(400)
    expect(await text(again, 'many')).toBe(Array.from({ length: 515 }, (_, i) => `${i % 10}`).join(''))
    // A fork at an append boundary inside the stored tail and one inside the file's page.
    for (const at of [513, 100]) {
      const fork = await put(again, `fork${at}`, { 'Stream-Forked-From': '/v1/stream/many', 'Stream-Fork-Offset': `0000000000000000_${String(at).padStart(16, '0')}` })
      expect(fork.status).toBe(201)
    }
    expect(await text(again, 'fork513')).toBe(Array.from({ length: 513 }, (_, i) => `${i % 10}`).join(''))
  })

  test('a crash during a segment roll (the new segment torn or missing) recovers every acknowledged byte', async () => {
    for (const keep of [0, 7, 100, 5000]) {
      const io = new SimIo()
      const server = await boot(io, { segmentBytes: 4096 })
      await put(server, 'roll', { 'Content-Type': 'text/plain' }, 'start;')
      await server.checkpoint()
      const sent: string[] = ['start;']
      // 60 appends of 100 bytes: data files roll at 4 KiB, twice, after the checkpoint.
      for (let i = 0; i < 60; i++) {
        const body = `${String(i).padStart(4, '0')}:`.padEnd(100, 'r')
        expect((await post(server, 'roll', body)).status).toBe(204)
        sent.push(body)
      }
      await new Promise((resolve) => setTimeout(resolve, 1100)) // the data files are written, unsynced
      const after = await boot(io.crashed(keep))
      expect(await text(after, 'roll'), `keeping ${keep} unsynced bytes`).toBe(sent.join(''))
      expect(after.recovery!.records).toBe(60)
      const names = await io.list(`${DATA}/streams`) // the dying server had rolled
      expect(names.some((name) => name.endsWith('.000001.data'))).toBe(true)
    }
  })

  test('a damaged registry entry is refused loudly; --salvage treats the stream as absent', async () => {
    const io = new SimIo()
    const server = await boot(io)
    await put(server, 'hurt', { 'Content-Type': 'text/plain' }, 'data')
    await put(server, 'fine', { 'Content-Type': 'text/plain' }, 'ok')
    await server.checkpoint()
    const saved = JSON.parse(Buffer.from(io.contents(REGISTRY)!).toString()) as { entries: Array<[number, string]> }
    const hurt = saved.entries.find(([, entry]) => Buffer.from(entry, 'base64').toString().includes('"hurt"'))!
    const position = Buffer.from(io.contents(REGISTRY)!).toString().indexOf(hurt[1]) + 20
    io.flipBit(REGISTRY, position)
    const disk = io.crashed()
    const damaged = await boot(disk)
    const res = await fetch(url(damaged, 'hurt'))
    expect(res.status).toBe(500)
    expect(await res.text()).toMatch(/registry entry of stream \d+ .*--salvage/)
    expect(await text(damaged, 'fine')).toBe('ok')
    expect((await post(damaged, 'fine', 'more')).status).toBe(204)
    const salvaged = await boot(disk.crashed(), { salvage: true })
    expect((await fetch(url(salvaged, 'hurt'))).status).toBe(404)
    expect(await text(salvaged, 'fine')).toBe('okmore')
  })

  test('a WAL record for a damaged entry stops startup unless --salvage', async () => {
    const io = new SimIo()
    const server = await boot(io)
    await put(server, 'hurt', { 'Content-Type': 'text/plain' }, 'data')
    await server.checkpoint()
    await post(server, 'hurt', 'more')
    const contents = Buffer.from(io.contents(REGISTRY)!).toString()
    const saved = JSON.parse(contents) as { entries: Array<[number, string]> }
    io.flipBit(REGISTRY, contents.indexOf(saved.entries[0]![1]) + 20)
    await expect(boot(io.crashed())).rejects.toThrow(/registry entry of stream 1/)
    const salvaged = await boot(io.crashed(), { salvage: true })
    expect((await fetch(url(salvaged, 'hurt'))).status).toBe(404)
  })
})

const fileOf = (id: number): string => `${DATA}/streams/${String(id).padStart(12, '0')}.000000.data`
/** The files a stream has in the streams directory. */
async function filesOf(io: SimIo, id: number): Promise<string[]> {
  return (await io.list(`${DATA}/streams`)).filter((name) => name.startsWith(`${String(id).padStart(12, '0')}.`))
}

describe('small streams kept in their registry entry', () => {
  test('a small stream has no data file, across evictions and crashes; past the limit all its bytes move to one, byte-exact', async () => {
    const io = new SimIo()
    const server = await boot(io)
    await put(server, 'small', { 'Content-Type': 'text/plain' }, 'a;')
    for (let i = 0; i < 10; i++) await post(server, 'small', `b${i};`)
    let expected = 'a;' + Array.from({ length: 10 }, (_, i) => `b${i};`).join('')
    await server.checkpoint()
    // Two resident streams at most: these push 'small' out of memory after the checkpoint.
    for (const other of ['x', 'y', 'z']) await put(server, other, { 'Content-Type': 'text/plain' }, other)
    await server.checkpoint()
    await sleep(1200)
    expect(await filesOf(io, 1)).toEqual([])
    expect(await text(server, 'small')).toBe(expected)
    // A read from inside the stored bytes.
    const mid = await fetch(`${url(server, 'small')}?offset=0000000000000000_${String(5).padStart(16, '0')}`)
    expect(await mid.text()).toBe(expected.slice(5))
    const disk = io.crashed()
    const again = await boot(disk)
    expect(again.recovery!.records).toBe(0)
    expect(await text(again, 'small')).toBe(expected)
    // Past the limit (1 KiB): the sweep writes every byte, from the first one.
    const big = 'c'.repeat(1100)
    await post(again, 'small', big)
    expected += big
    await sleep(1200)
    expect(Buffer.from(disk.contents(fileOf(1))!).toString()).toBe(expected)
    // A crash before the next checkpoint: the entry still holds the old bytes; the WAL the rest.
    const cut = disk.crashed()
    const third = await boot(cut)
    expect(await text(third, 'small')).toBe(expected)
    await post(third, 'small', 'd;')
    expected += 'd;'
    await third.checkpoint()
    const fourth = await boot(cut.crashed())
    expect(fourth.recovery!.records).toBe(0)
    expect(await text(fourth, 'small')).toBe(expected)
    expect((await post(fourth, 'small', 'e;')).status).toBe(204)
    expect(await text(fourth, 'small')).toBe(expected + 'e;')
  })

  test('a fork of a small stream reads its stored bytes; deleting both leaves nothing stored', async () => {
    const io = new SimIo()
    const server = await boot(io)
    await put(server, 'src', { 'Content-Type': 'text/plain' }, 'one;')
    await post(server, 'src', 'two;')
    await post(server, 'src', 'three;')
    await server.checkpoint()
    const fork = await put(server, 'fork', { 'Stream-Forked-From': '/v1/stream/src', 'Stream-Fork-Offset': `0000000000000000_${String(8).padStart(16, '0')}` })
    expect(fork.status).toBe(201)
    await post(server, 'fork', 'own;')
    await post(server, 'src', 'four;')
    await server.checkpoint()
    const disk = io.crashed()
    const again = await boot(disk)
    expect(again.recovery!.records).toBe(0)
    expect(await text(again, 'fork')).toBe('one;two;own;')
    expect(await text(again, 'src')).toBe('one;two;three;four;')
    expect(await filesOf(disk, 1)).toEqual([])
    expect(await filesOf(disk, 2)).toEqual([])
    expect((await fetch(url(again, 'src'), { method: 'DELETE' })).status).toBe(204)
    // Soft-deleted while the fork reads through it.
    expect(await text(again, 'fork')).toBe('one;two;own;')
    expect((await fetch(url(again, 'fork'), { method: 'DELETE' })).status).toBe(204)
    await again.checkpoint()
    expect(storedPaths(disk)).toEqual([])
  })
})

/** The engine on durable storage on `io`, recovered, with room for `resident` idle streams. */
async function engineOn(io: SimIo, resident: number): Promise<{ engine: Engine; storage: DurableStorage }> {
  const storage = new DurableStorage({
    io, dataDir: DATA, walSegmentBytes: 1 << 20, checkpointIntervalMs: 3_600_000, checkpointWalBytes: Number.MAX_SAFE_INTEGER, openFilesMax: 16,
    readCacheBytes: 1 << 20, segmentBytes: 1 << 20, salvage: false, checkpointChangedStreams: 1e9, diskReserveBytes: 0,
    openRegistry: async (dir) => {
      await io.mkdirp(dir)
      return IoRegistry.open(io, dir)
    },
  })
  const engine = new Engine({ storage, defaultDurability: 'fsync', expirySweepMs: 60_000 })
  engine.registry.stopSweeping()
  await storage.recover(recoveryTarget(engine, resident))
  return { engine, storage }
}

describe('a checkpoint in flight', () => {
  test('streams it took stay in memory until it stores them: a failed one loses nothing, though the next retires the WAL', async () => {
    const io = new SimIo()
    const { engine, storage } = await engineOn(io, 1)
    const type = parseContentType('text/plain')
    const append = (path: string, text: string): unknown => engine.append({ path, contentType: type, body: Buffer.from(text), close: false, producer: undefined, streamSeq: undefined })
    const paths = ['s0', 's1', 's2']
    for (const path of paths) await engine.create({ path, contentType: type, ttlSeconds: undefined, expiresAtMs: undefined, closed: false, body: Buffer.from(`${path}:a;`), fork: undefined, durability: undefined })
    await storage.checkpoint()
    for (const path of paths) await append(path, `${path}:b;`)
    io.failNext('rename', 'EIO')
    // The snapshot is taken at once; while the store commit is pending, every idle stream
    // that may leave memory does (as loads of other streams make them).
    const failing = storage.checkpoint()
    engine.registry.evict(0)
    await expect(failing).rejects.toThrow(/EIO/)
    await storage.checkpoint()
    const { engine: recovered, storage: again } = await engineOn(io.crashed(), 1)
    for (const path of paths) {
      const stream = recovered.openForRead(path)
      expect(Buffer.concat(await stream.read(0, stream.tail)).toString()).toBe(`${path}:a;${path}:b;`)
    }
    await again.close()
  })
})

