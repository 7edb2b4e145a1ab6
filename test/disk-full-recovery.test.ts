// A full disk on the simulator (storage/durable.ts with a free-space answer this test keeps):
// a disk with room for one WAL segment and its reserve fills, refuses appends, and once every
// stream is deleted the disk-full timer starts the retired segment over in place (no second
// segment fits); appends resume. A power cut when full, after the DELETE and after the
// resumed appends recovers every acknowledged byte.

import { expect, test } from 'vitest'
import { SimIo } from '../src/io/sim.js'
import { parseContentType } from '../src/protocol/headers.js'
import { DurableStorage } from '../src/storage/durable.js'
import { IoRegistry } from '../src/storage/registry/registry-store.js'
import { Engine } from '../src/streams/engine.js'
import { recoveryTarget } from '../src/streams/recovery.js'
import { DATA, sleep } from './sim-server.js'

const SEGMENT = 64 * 1024
const TYPE = parseContentType('application/octet-stream')

/** Bytes of every file under the data directory, as the disk holds them now. */
async function usedBytes(io: SimIo): Promise<number> {
  let used = 0
  for (const dir of ['wal', 'streams', 'registry']) {
    for (const name of await io.list(`${DATA}/${dir}`)) used += io.contents(`${DATA}/${dir}/${name}`)?.length ?? 0
  }
  return used
}

/** The engine on durable storage on `io`, whose disk holds `diskBytes()` (all of it, as
 * far as this storage knows). Checkpoints come only when asked and from a full disk. */
async function engineOn(io: SimIo, diskBytes: () => number): Promise<{ engine: Engine; storage: DurableStorage }> {
  const storage = new DurableStorage({
    io, dataDir: DATA, walSegmentBytes: SEGMENT, diskReserveBytes: SEGMENT, checkpointIntervalMs: 3_600_000, checkpointWalBytes: Number.MAX_SAFE_INTEGER,
    openFilesMax: 16, readCacheBytes: 1 << 20, segmentBytes: 1 << 20, inlineBytesMax: 0, salvage: false, checkpointChangedStreams: 1e9,
    freeBytes: async () => diskBytes() - (await usedBytes(io)),
    openRegistry: async (dir) => {
      await io.mkdirp(dir)
      return IoRegistry.open(io, dir)
    },
  })
  const engine = new Engine({ storage, defaultDurability: 'fsync', expirySweepMs: 60_000 })
  engine.registry.stopSweeping()
  await storage.recover(recoveryTarget(engine, 100))
  return { engine, storage }
}

const append = (engine: Engine, path: string, bytes: Buffer): Promise<unknown> =>
  Promise.resolve(engine.append({ path, contentType: TYPE, body: bytes, close: false, producer: undefined, streamSeq: undefined }))
const create = (engine: Engine, path: string): Promise<unknown> =>
  Promise.resolve(engine.create({ path, contentType: TYPE, ttlSeconds: undefined, expiresAtMs: undefined, closed: false, body: Buffer.alloc(0), fork: undefined, durability: undefined }))

async function contents(engine: Engine, path: string): Promise<string | undefined> {
  try {
    const stream = engine.openForRead(path)
    return Buffer.concat(await stream.read(0, stream.tail)).toString()
  } catch {
    return undefined
  }
}

test('one segment and its reserve: full, every stream deleted, the segment starts over and appends resume; power cuts lose nothing', { timeout: 20_000 }, async () => {
  const io = new SimIo()
  // No room for a spare segment from the start (the first one is made regardless).
  let disk = 0
  const { engine, storage } = await engineOn(io, () => disk)
  await create(engine, 'keep')
  await create(engine, 'big')
  let kept = ''
  const keepMore = async (text: string): Promise<void> => {
    await append(engine, 'keep', Buffer.from(text))
    kept += text
  }
  await keepMore('kept;')
  await storage.checkpoint()
  // Room for what is there, and 100 KiB more: the reserve, not a second segment beside it.
  disk = (await usedBytes(io)) + 100 * 1024
  let big = ''
  let refused: unknown
  for (let i = 0; i < 100 && refused === undefined; i++) {
    const text = `${String(i).padStart(4, '0')};`.padEnd(2048, '.')
    await append(engine, 'big', Buffer.from(text)).then(
      () => (big += text),
      (error: unknown) => (refused = error),
    )
  }
  expect((refused as { code?: string }).code).toBe('INSUFFICIENT_STORAGE')
  expect(big.length).toBeGreaterThan(40 * 1024)
  expect(storage.diskFull).toBe(true)
  const images: Array<{ when: string; disk: SimIo; big: string | undefined; kept: string }> = []
  images.push({ when: 'full', disk: io.crashed(), big, kept })
  // Still full a checkpoint later: the data files hold what the WAL did.
  await sleep(1200)
  await expect(append(engine, 'keep', Buffer.from('refused;'.padEnd(2048, '-')))).rejects.toMatchObject({ code: 'INSUFFICIENT_STORAGE' })
  const baseBefore = (await io.list(`${DATA}/wal`)).filter((name) => name.endsWith('.wal'))
  await Promise.resolve(engine.delete('big'))
  images.push({ when: 'after the DELETE', disk: io.crashed(), big: undefined, kept })
  const deleted = performance.now()
  while (storage.diskFull && performance.now() - deleted < 5000) await sleep(50)
  expect(storage.diskFull).toBe(false)
  // The one segment there was, now starting at the end of the log.
  const baseAfter = (await io.list(`${DATA}/wal`)).filter((name) => name.endsWith('.wal'))
  expect(baseAfter.length).toBe(1)
  expect(baseAfter).not.toEqual(baseBefore)
  for (let i = 0; i < 20; i++) await keepMore(`again-${i};`.padEnd(2048, '+'))
  images.push({ when: 'after the resumed appends', disk: io.crashed(), big: undefined, kept })
  await storage.close()
  for (const image of images) {
    const { engine: after, storage: again } = await engineOn(image.disk, () => Number.MAX_SAFE_INTEGER)
    expect(await contents(after, 'keep'), image.when).toBe(image.kept)
    expect(await contents(after, 'big'), image.when).toBe(image.big)
    await again.close()
  }
})
