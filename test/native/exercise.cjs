'use strict'
// test/native/exercise.cjs — drives every path of the addon's JS surface (create, argument
// checks, writev + linked fdatasync, reads, backpressure, errno errors, ECANCELED, close,
// finalizers, a throwing callback) with plain asserts. Run under memcheck by valgrind.mjs;
// any failed assert exits non-zero. Argument: the .node file (default: the local build).

const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const addon = require(process.argv[2] ?? path.join(__dirname, '../../build/Release/ringstream.node'))
const ENOSPC = -os.constants.errno.ENOSPC
const EBADF = -os.constants.errno.EBADF
const ECANCELED = -os.constants.errno.ECANCELED

/** A ring whose completions resolve per-slot promises: [res, linkedSyncRes]. */
function openRing(slots, onBatch = () => {}) {
  const pending = new Map()
  const ring = addon.create(slots, (batch, count) => {
    onBatch(count)
    for (let i = 0; i < count; i++) {
      const [slot, res, part] = [batch[3 * i], batch[3 * i + 1], batch[3 * i + 2]]
      const entry = pending.get(slot)
      entry.results[part] = res
      if (--entry.parts === 0) {
        pending.delete(slot)
        entry.resolve(entry.results)
      }
    }
  })
  const track = (slot, parts = 1) => {
    assert.ok(slot >= 0, `expected a slot, got ${slot}`)
    return new Promise((resolve) => pending.set(slot, { parts, results: [], resolve }))
  }
  return { ring, track }
}

function checkArguments(ring) {
  assert.throws(() => addon.create(0, () => {}), TypeError)
  assert.throws(() => addon.create(5000, () => {}), TypeError)
  assert.throws(() => addon.create(4, 'not a function'), TypeError)
  assert.throws(() => addon.submit({}), TypeError)
  assert.throws(() => addon.prepWritev(ring, 0, [], 0, 0), TypeError)
  assert.throws(() => addon.prepWritev(ring, 0, new Array(1025).fill(new Uint8Array(1)), 0, 0), TypeError)
  assert.throws(() => addon.prepWritev(ring, 0, [new Int16Array(2)], 0, 0), TypeError)
  assert.throws(() => addon.prepWritev(ring, 0, [new Uint8Array(1)], -1, 0), TypeError)
  assert.throws(() => addon.prepWritev(ring, 0, [new Uint8Array(1)], 0.5, 0), TypeError)
  assert.throws(() => addon.prepWritev(ring, -1, [new Uint8Array(1)], 0, 0), TypeError)
  assert.throws(() => addon.prepWritev(ring, 0, [new Uint8Array(1)], 0, 4), TypeError)
  assert.throws(() => addon.syncFs(-1, () => {}), TypeError)
  assert.throws(() => addon.syncFs(0, 'not a function'), TypeError)
  assert.throws(() => addon.prepRead(ring, 0, [1, 2], 0), TypeError)
  assert.throws(() => addon.prepFsync(ring, 0, 7), TypeError)
}

async function writeAndRead(ring, track, fd) {
  const buffers = [Buffer.from('hello '), new Uint8Array(0), Buffer.from('io_uring').subarray(3)]
  const written = track(addon.prepWritev(ring, fd, buffers, 2, 1), 2)
  assert.equal(addon.submit(ring), 0)
  assert.deepEqual(await written, [11, 0])

  const backing = new Uint8Array(20).fill(0xee)
  const read = track(addon.prepRead(ring, fd, backing.subarray(4, 12), 0))
  const past = track(addon.prepRead(ring, fd, new Uint8Array(4), 100))
  const sync = track(addon.prepFsync(ring, fd, 0))
  addon.submit(ring)
  assert.deepEqual(await read, [8])
  assert.equal(Buffer.from(backing.subarray(6, 12)).toString(), 'hello ')
  assert.equal(backing[3], 0xee)
  assert.equal(backing[12], 0xee)
  assert.deepEqual(await past, [0])
  assert.deepEqual(await sync, [0])

  const many = Array.from({ length: 1024 }, (_, i) => new Uint8Array([i & 0xff]))
  const wide = track(addon.prepWritev(ring, fd, many, 0, 0))
  addon.submit(ring)
  assert.deepEqual(await wide, [1024])
}

async function errors(ring, track, file) {
  const readOnly = fs.openSync(file, 'r')
  const failed = track(addon.prepWritev(ring, readOnly, [Buffer.from('x')], 0, 1), 2)
  addon.submit(ring)
  assert.deepEqual(await failed, [EBADF, ECANCELED])
  fs.closeSync(readOnly)

  const full = fs.openSync('/dev/full', 'w')
  const noSpace = track(addon.prepWritev(ring, full, [Buffer.from('x')], 0, 0))
  addon.submit(ring)
  assert.deepEqual(await noSpace, [ENOSPC])
  fs.closeSync(full)
}

async function backpressure(ring, track, fd, slots) {
  // Once every slot is taken, requests are refused, and the ring cannot close while busy.
  const taken = []
  for (let i = 0; i < slots; i++) taken.push(track(addon.prepRead(ring, fd, new Uint8Array(2), 0)))
  assert.equal(addon.prepFsync(ring, fd, 1), -1)
  assert.equal(addon.prepWritev(ring, fd, [Buffer.from('x')], 0, 1), -1)
  assert.throws(() => addon.close(ring), (error) => error.code === 'EBUSY')
  addon.submit(ring)
  await Promise.all(taken)
}

// A background (IOSQE_ASYNC) write with its linked datasync, then syncfs on the thread pool.
async function backgroundAndSyncFs(ring, track, fd, dir) {
  const written = track(addon.prepWritev(ring, fd, [Buffer.from('async')], 40, 3), 2)
  addon.submit(ring)
  assert.deepEqual(await written, [5, 0])
  const dirFd = fs.openSync(dir, 'r')
  assert.equal(await new Promise((resolve) => addon.syncFs(dirFd, resolve)), 0)
  fs.closeSync(dirFd)
  assert.equal(await new Promise((resolve) => addon.syncFs(dirFd, resolve)), 9)
}

async function throwingCallback(fd) {
  const ring = addon.create(1, () => {
    throw new Error('from the completion callback')
  })
  const caught = new Promise((resolve) => process.once('uncaughtException', resolve))
  addon.prepFsync(ring, fd, 1)
  addon.submit(ring)
  assert.equal((await caught).message, 'from the completion callback')
  addon.close(ring)
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ringstream-native-'))
  const file = path.join(dir, 'data')
  const fd = fs.openSync(file, 'w+')
  let batches = 0
  const { ring, track } = openRing(4, () => batches++)

  checkArguments(ring)
  await writeAndRead(ring, track, fd)
  await errors(ring, track, file)
  await backpressure(ring, track, fd, 4)
  await backgroundAndSyncFs(ring, track, fd, dir)
  assert.ok(batches > 0)
  addon.close(ring)
  assert.throws(() => addon.submit(ring), /closed/)
  assert.throws(() => addon.close(ring), /closed/)

  await throwingCallback(fd)

  // Dropped without close: the finalizer must release it when collected.
  addon.create(8, () => {})
  global.gc?.()
  // Left open and idle: it must not keep the process alive, and teardown releases it.
  const idle = openRing(4)
  assert.ok(idle.ring)

  fs.closeSync(fd)
  fs.rmSync(dir, { recursive: true, force: true })
  console.log('exercise: ok')
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
