// Recovery on the fault-injecting simulator: a real server (HTTP and all) runs on SimIo, the
// disk is "power-cut" with SimIo.crashed(), and a new server recovers from what survived.
// Covers torn WAL tails, flipped bits, crashes around checkpoints, ENOSPC/EIO mid-batch,
// and that TTL/expiry and fork relationships survive restarts.

import { describe, expect, test } from 'vitest'
import { SimIo } from '../src/io/sim.js'
import { DATA, post, put, sleep, text, url, useSimServers } from './sim-server.js'

const SEGMENT = `${DATA}/wal/00000000000000000000.wal`
// Every stream here writes a data file (no inline small streams): these cases are about
// the files. Inline streams' recovery is in registry.test.ts.
const boot = useSimServers({ longPollTimeoutMs: 200, inlineBytesMax: 0 })

describe('power cuts', () => {
  test('fsync-acknowledged appends survive; recovery replays them from the WAL', async () => {
    const io = new SimIo()
    const before = await boot(io)
    await put(before, 'a')
    for (let i = 0; i < 20; i++) expect((await post(before, 'a', `m${i};`)).status).toBe(204)
    const after = await boot(io.crashed())
    expect(await text(after, 'a')).toBe(Array.from({ length: 20 }, (_, i) => `m${i};`).join(''))
    expect(after.recovery!.records).toBe(21)
  })

  test('a torn WAL tail is cut off and everything synced before it survives', async () => {
    let sawTornTail = false
    for (const keep of [3, 9, 17, 40, 77]) {
      const io = new SimIo()
      const before = await boot(io)
      await put(before, 'durable')
      await post(before, 'durable', 'synced')
      // Buffered-class appends are written but not synced: a power cut tears them.
      await put(before, 'loose', { 'Content-Type': 'text/plain', 'Stream-Durability': 'buffered' })
      for (let i = 0; i < 5; i++) await post(before, 'loose', `unsynced-${i}`)
      const disk = io.crashed(keep)
      const after = await boot(disk)
      expect(await text(after, 'durable')).toBe('synced')
      if (after.recovery!.droppedBytes > 0) sawTornTail = true
      // Whatever survived of the loose stream is a prefix of what was written.
      const loose = await fetch(url(after, 'loose'))
      if (loose.status === 200) expect('unsynced-0unsynced-1unsynced-2unsynced-3unsynced-4'.startsWith(await loose.text())).toBe(true)
      // The recovered server keeps working and a later restart replays cleanly.
      expect((await post(after, 'durable', '+more')).status).toBe(204)
      const again = await boot(disk.crashed())
      expect(await text(again, 'durable')).toBe('synced+more')
    }
    expect(sawTornTail).toBe(true)
  })

  test('a flipped bit in the middle of the WAL stops startup; --salvage starts with the prefix', async () => {
    const io = new SimIo()
    const before = await boot(io)
    await put(before, 'x')
    for (let i = 0; i < 10; i++) await post(before, 'x', `record-${i}`)
    const disk = io.crashed()
    const walBefore = disk.contents(SEGMENT)!
    // The first record (the create) starts at 0: flip a bit inside its body.
    disk.flipBit(SEGMENT, 20)
    const damaged = disk.contents(SEGMENT)!
    await expect(boot(disk)).rejects.toThrow(/WAL corruption/)
    expect(Buffer.from(disk.contents(SEGMENT)!).equals(Buffer.from(damaged))).toBe(true)
    expect(Buffer.from(walBefore).equals(Buffer.from(damaged))).toBe(false)
    const salvaged = await boot(disk, { salvage: true })
    expect((await fetch(url(salvaged, 'x'))).status).toBe(404)
  })

  test('a flipped bit in the last record is a torn tail, not corruption', async () => {
    const io = new SimIo()
    const before = await boot(io)
    await put(before, 'y')
    await post(before, 'y', 'first')
    const sizeBeforeLast = (await (await fetch(url(before, 'y'), { method: 'HEAD' })).headers.get('stream-next-offset'))!
    await post(before, 'y', 'second')
    const disk = io.crashed()
    const wal = disk.contents(SEGMENT)!
    let end = 0
    // Frames are u32 crc | u32 length | body; walk them to the end of the written part.
    while (end + 8 <= wal.length && Buffer.from(wal).readUInt32LE(end + 4) !== 0) end += 8 + Buffer.from(wal).readUInt32LE(end + 4)
    disk.flipBit(SEGMENT, end - 2)
    const after = await boot(disk)
    expect(await text(after, 'y')).toBe('first')
    expect(sizeBeforeLast).toBe('0000000000000000_0000000000000005')
  })
})

describe('checkpoints', () => {
  test('state from a checkpoint plus the WAL after it; covered segments are retired', async () => {
    const io = new SimIo()
    const before = await boot(io, { walSegmentBytes: 64 * 1024, appendBytesMax: 16 * 1024 })
    await put(before, 'c', { 'Content-Type': 'application/json' })
    const big = JSON.stringify({ pad: 'p'.repeat(8000) })
    for (let i = 0; i < 30; i++) expect((await post(before, 'c', big, { 'Content-Type': 'application/json' })).status).toBe(204)
    const segmentsBefore = (await io.list(`${DATA}/wal`)).filter((name) => name.endsWith('.wal')).length
    expect(segmentsBefore).toBeGreaterThan(2)
    await before.checkpoint()
    const segmentsAfter = (await io.list(`${DATA}/wal`)).filter((name) => name.endsWith('.wal')).length
    expect(segmentsAfter).toBeLessThan(segmentsBefore)
    for (let i = 0; i < 3; i++) await post(before, 'c', JSON.stringify({ after: i }), { 'Content-Type': 'application/json' })
    const after = await boot(io.crashed(), { walSegmentBytes: 64 * 1024, appendBytesMax: 16 * 1024 })
    expect(after.recovery!.checkpointLsn).toBeGreaterThan(0)
    expect(after.recovery!.records).toBe(3)
    const messages = (await (await fetch(url(after, 'c'))).json()) as unknown[]
    expect(messages.length).toBe(33)
    expect(messages[32]).toEqual({ after: 2 })
  })

  test('a start that replayed a long WAL checkpoints at once: a crash loop does not replay it again', async () => {
    const io = new SimIo()
    const options = { checkpointAfterReplayRecords: 25, checkpointIntervalMs: 3_600_000 }
    const first = await boot(io, options)
    await put(first, 'loop')
    for (let i = 0; i < 30; i++) expect((await post(first, 'loop', `m${i};`)).status).toBe(204)
    const secondDisk = io.crashed()
    const second = await boot(secondDisk, options)
    expect(second.recovery!.records).toBe(31)
    // Only the checkpoint that follows the replay stores the stream: no interval passes here.
    await sleep(200)
    await post(second, 'loop', 'after;')
    const thirdDisk = secondDisk.crashed()
    const third = await boot(thirdDisk, options)
    expect(third.recovery!.checkpointLsn).toBeGreaterThan(0)
    expect(third.recovery!.records).toBe(1)
    expect(await text(third, 'loop')).toBe(`${Array.from({ length: 30 }, (_, i) => `m${i};`).join('')}after;`)
    // A short replay (below the limit) waits for the interval as before.
    await post(third, 'loop', 'again;')
    const fourth = await boot(thirdDisk.crashed(), options)
    expect(fourth.recovery!.records).toBe(2)
  })

  test('a crash in the middle of a checkpoint (before its rename) recovers from the WAL', async () => {
    const io = new SimIo()
    const before = await boot(io)
    await put(before, 'k', { 'Content-Type': 'text/plain' }, 'base;')
    await before.checkpoint()
    await post(before, 'k', 'after-first-checkpoint;')
    io.failNext('rename', 'EIO')
    await expect(before.checkpoint()).rejects.toThrow()
    await post(before, 'k', 'after-failed-checkpoint;')
    const after = await boot(io.crashed())
    expect(await text(after, 'k')).toBe('base;after-first-checkpoint;after-failed-checkpoint;')
  })
})

describe('disk errors', () => {
  test('ENOSPC fails the append with 507, acks nothing, and the server keeps serving', async () => {
    const io = new SimIo()
    const server = await boot(io)
    await put(server, 'full', { 'Content-Type': 'text/plain' }, 'kept;')
    await sleep(50)
    io.failNext('writev', 'ENOSPC', 5)
    const refused = await post(server, 'full', 'lost;')
    expect(refused.status).toBe(507)
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('INSUFFICIENT_STORAGE')
    expect(await text(server, 'full')).toBe('kept;')
    const accepted = await post(server, 'full', 'next;')
    expect(accepted.status).toBe(204)
    expect(accepted.headers.get('stream-next-offset')).toBe('0000000000000000_0000000000000010')
    expect(await text(server, 'full')).toBe('kept;next;')
    const after = await boot(io.crashed())
    expect(await text(after, 'full')).toBe('kept;next;')
  })

  test('EIO on the WAL is a 500; a producer retry after it is accepted, not deduplicated', async () => {
    const io = new SimIo()
    const server = await boot(io)
    await put(server, 'eio')
    await sleep(50)
    const producer = { 'Producer-Id': 'p', 'Producer-Epoch': '0', 'Producer-Seq': '0' }
    io.failNext('writev', 'EIO')
    expect((await post(server, 'eio', 'one', producer)).status).toBe(500)
    expect((await post(server, 'eio', 'one', producer)).status).toBe(200)
    expect(await text(server, 'eio')).toBe('one')
  })
})

describe('restarts keep expiry and forks', () => {
  test('TTL and Expires-At still expire after a restart', async () => {
    const io = new SimIo()
    const before = await boot(io)
    await put(before, 'ttl', { 'Content-Type': 'text/plain', 'Stream-TTL': '1' })
    await put(before, 'abs', { 'Content-Type': 'text/plain', 'Stream-Expires-At': new Date(Date.now() + 1000).toISOString() })
    await put(before, 'keep', { 'Content-Type': 'text/plain', 'Stream-TTL': '3600' })
    const after = await boot(io.crashed())
    const head = await fetch(url(after, 'keep'), { method: 'HEAD' })
    expect(head.headers.get('stream-ttl')).toBe('3600')
    await sleep(1300)
    expect((await fetch(url(after, 'ttl'), { method: 'HEAD' })).status).toBe(404)
    expect((await fetch(url(after, 'abs'), { method: 'HEAD' })).status).toBe(404)
    expect((await fetch(url(after, 'keep'), { method: 'HEAD' })).status).toBe(200)
  })

  test('fork chains, soft deletes and cascade cleanup survive restarts (WAL and checkpoint)', async () => {
    const io = new SimIo()
    const first = await boot(io)
    await put(first, 'src', { 'Content-Type': 'text/plain' }, 'A')
    await put(first, 'mid', { 'Stream-Forked-From': '/v1/stream/src' })
    await post(first, 'mid', 'B')
    await put(first, 'leaf', { 'Stream-Forked-From': '/v1/stream/mid', 'Stream-Fork-Offset': '0000000000000000_0000000000000001', 'Stream-Fork-Sub-Offset': '1' })
    await post(first, 'leaf', 'C')
    expect((await fetch(url(first, 'src'), { method: 'DELETE' })).status).toBe(204)
    const second = await boot(io.crashed())
    expect((await fetch(url(second, 'src'), { method: 'HEAD' })).status).toBe(410)
    expect(await text(second, 'mid')).toBe('AB')
    expect(await text(second, 'leaf')).toBe('ABC')
    await second.checkpoint()
    const disk = io.crashed().crashed()
    const third = await boot(disk)
    expect(await text(third, 'leaf')).toBe('ABC')
    expect((await fetch(url(third, 'mid'), { method: 'DELETE' })).status).toBe(204)
    expect((await fetch(url(third, 'leaf'), { method: 'DELETE' })).status).toBe(204)
    const fourth = await boot(disk.crashed())
    for (const path of ['src', 'mid', 'leaf']) expect((await fetch(url(fourth, path), { method: 'HEAD' })).status).toBe(404)
  })
})

describe('durability classes in one server', () => {
  test('memory-class streams vanish on restart; their durable sources are cleaned up', async () => {
    const io = new SimIo()
    const before = await boot(io)
    await put(before, 'durable-src', { 'Content-Type': 'text/plain' }, 'D')
    await put(before, 'mem', { 'Content-Type': 'text/plain', 'Stream-Durability': 'memory' }, 'M')
    const memFork = await put(before, 'mem-fork', { 'Stream-Forked-From': '/v1/stream/durable-src', 'Stream-Durability': 'memory' })
    expect(memFork.status).toBe(201)
    expect(memFork.headers.get('stream-durability')).toBe('memory')
    const refused = await put(before, 'durable-fork-of-mem', { 'Stream-Forked-From': '/v1/stream/mem' })
    expect(refused.status).toBe(400)
    expect((await fetch(url(before, 'durable-src'), { method: 'DELETE' })).status).toBe(204)
    expect((await fetch(url(before, 'durable-src'), { method: 'HEAD' })).status).toBe(410)
    const after = await boot(io.crashed())
    expect((await fetch(url(after, 'mem'), { method: 'HEAD' })).status).toBe(404)
    expect((await fetch(url(after, 'mem-fork'), { method: 'HEAD' })).status).toBe(404)
    expect((await fetch(url(after, 'durable-src'), { method: 'HEAD' })).status).toBe(404)
  })
})

describe('descriptor cache', () => {
  test('more busy streams than open files: writes, reads and recovery stay correct', async () => {
    const io = new SimIo()
    const options = { openFilesMax: 2 }
    const server = await boot(io, options)
    const names = Array.from({ length: 12 }, (_, i) => `many-${i}`)
    for (const name of names) await put(server, name)
    await Promise.all(names.flatMap((name) => [0, 1, 2].map((k) => post(server, name, `${name}:${k};`))))
    await server.checkpoint()
    for (const name of names) {
      const content = await text(server, name)
      for (const k of [0, 1, 2]) expect(content).toContain(`${name}:${k};`)
    }
    const after = await boot(io.crashed(), options)
    for (const name of names) expect((await text(after, name)).length).toBe(3 * `${name}:0;`.length)
  })
})
