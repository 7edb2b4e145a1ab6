// io/uring.ts — the io_uring I/O backend over the native addon (native/addon.cc). The ring
// carries writev (+ linked fdatasync), read and datasync; open/size/truncate/close and the
// directory operations are off the hot path and stay on node:fs; syncfs is the addon's,
// on libuv's thread pool. This file owns the
// policy: slot backpressure (a FIFO of requests waiting for a free slot), one
// io_uring_enter per tick, IOV_MAX chunking, finishing short writes and reads, errno codes.

import * as fs from 'node:fs'
import * as os from 'node:os'
import { promisify, getSystemErrorMap } from 'node:util'
import { byteLength, remainder } from './buffers.js'
import { NodeFsIo } from './node-fs.js'
import type { Io, IoFile } from './types.js'

/** The opaque ring handle the addon hands out. */
export type UringRing = object

/** The addon's JS surface (see native/addon.cc). */
export interface UringAddon {
  /** Throws an Error with an errno `code` (EPERM, ENOSYS, …) when io_uring is unavailable. */
  create(slots: number, onCompletions: (batch: Int32Array, count: number) => void): UringRing
  /** Slot index, or -1 when every slot is busy. flags: 1 = linked fdatasync, 2 = IOSQE_ASYNC. */
  prepWritev(ring: UringRing, fd: number, buffers: readonly Uint8Array[], position: number, flags: number): number
  prepRead(ring: UringRing, fd: number, buffer: Uint8Array, position: number): number
  /** flags: 1 = fdatasync, 0 = fsync. */
  prepFsync(ring: UringRing, fd: number, flags: number): number
  /** Submits prepared requests; returns how many the kernel could not take yet. */
  submit(ring: UringRing): number
  /** Only when no request is in flight. */
  close(ring: UringRing): void
  /** syncfs(2) on libuv's thread pool; `done` gets 0 or an errno. Absent from prebuilt
   * binaries made before it existed. */
  syncFs?(fd: number, done: (errno: number) => void): void
}

/** Linux caps one writev at 1024 buffers (IOV_MAX). */
export const IOV_MAX = 1024
/** Linux caps one read or write at this many bytes (MAX_RW_COUNT). */
const READ_BYTES_MAX = 0x7ffff000
const FLAG_DATASYNC = 1
/** IOSQE_ASYNC: the kernel copies on an io-wq worker instead of inside io_uring_enter on
 * the event loop (measured: a buffered write creating a file's first block cost ~85 µs of
 * the loop inline). Addons with syncFs know the flag; older prebuilt ones refuse it. */
const FLAG_BACKGROUND = 2
const SUBMIT_RETRY_MS = 1
const DEFAULT_SLOTS = 256

/** fs.open with a plain callback: promisify's wrapper costs ~4× the event loop's time per
 * call (measured: 1,000 creates, 20 vs 4.6 ms), and a checkpoint may create a thousand files. */
function openAsync(path: string, flags: number, mode: number): Promise<number> {
  return new Promise((resolve, reject) => fs.open(path, flags, mode, (error, fd) => (error === null ? resolve(fd) : reject(error))))
}
const fstatAsync = promisify(fs.fstat)
const ftruncateAsync = promisify(fs.ftruncate)
const closeAsync = promisify(fs.close)

const systemErrors = getSystemErrorMap()
const errnoNames = new Map<number, string>()
for (const [name, errno] of Object.entries(os.constants.errno)) if (!errnoNames.has(errno)) errnoNames.set(errno, name)

/** A node:fs-shaped error (code, errno, syscall, path) for a negative CQE result. */
export function uringError(res: number, syscall: string, path?: string): NodeJS.ErrnoException {
  const [code, description] = systemErrors.get(res) ?? [errnoNames.get(-res) ?? 'UNKNOWN', `errno ${-res}`]
  const error: NodeJS.ErrnoException = new Error(`${code}: ${description}, ${syscall}${path === undefined ? '' : ` '${path}'`}`)
  error.code = code
  error.errno = res
  error.syscall = syscall
  if (path !== undefined) error.path = path
  return error
}

/** Counts work in progress and lets callers wait for none. */
class Pending {
  private count = 0
  private waiters: Array<() => void> = []

  get idle(): boolean {
    return this.count === 0
  }

  add(): void {
    this.count++
  }

  done(): void {
    this.count--
    if (this.count === 0) for (const wake of this.waiters.splice(0)) wake()
  }

  whenIdle(): Promise<void> {
    return this.count === 0 ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve))
  }
}

class UringFile implements IoFile {
  closed = false
  /** Calls in progress on this fd: close waits for them so the fd is not reused under them. */
  readonly pending = new Pending()

  constructor(
    readonly path: string,
    readonly fd: number,
  ) {}
}

/** One ring request: a slot's worth of work and the results of its one or two CQEs. */
interface Request {
  /** Prepares the SQE(s); slot index or -1 when no slot is free. */
  prep(addon: UringAddon, ring: UringRing): number
  parts: number
  res: number
  syncRes: number
  /** Called once all parts are in. */
  finish(): void
  fail(error: unknown): void
}

function fileOf(file: IoFile): UringFile {
  if (!(file instanceof UringFile)) throw new TypeError('UringIo was given a file it did not open')
  return file
}

/** The fd of an open file; EBADF once closed, as its number may belong to another file by now. */
function fdOf(file: IoFile, syscall: string): number {
  const open = fileOf(file)
  if (open.closed) throw uringError(-os.constants.errno.EBADF, syscall, open.path)
  return open.fd
}

export class UringIo implements Io {
  readonly name = 'uring'
  private readonly ring: UringRing
  private readonly fsIo = new NodeFsIo()
  /** In-flight requests by slot; they hold their buffers until the kernel is done. */
  private readonly inflight: Array<Request | undefined> = []
  /** Requests waiting for a slot, oldest first. */
  private waiting: Request[] = []
  private submitScheduled = false
  private readonly calls = new Pending()
  private shutdownStarted = false
  private closed = false

  /** Directory fds kept open for syncFs, by path. */
  private readonly syncFsDirs = new Map<string, Promise<number>>()
  readonly syncFs: ((dir: string) => Promise<void>) | undefined

  constructor(
    private readonly addon: UringAddon,
    slots = DEFAULT_SLOTS,
  ) {
    this.ring = addon.create(slots, (batch, count) => this.complete(batch, count))
    this.syncFs = typeof addon.syncFs === 'function' ? (dir) => this.syncFileSystem(dir) : undefined
  }

  private async syncFileSystem(dir: string): Promise<void> {
    if (this.shutdownStarted) throw new Error('UringIo is shut down')
    let fd = this.syncFsDirs.get(dir)
    if (fd === undefined) {
      fd = openAsync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY, 0)
      this.syncFsDirs.set(dir, fd)
      fd.catch(() => this.syncFsDirs.delete(dir))
    }
    const open = await fd
    this.calls.add()
    try {
      const errno = await new Promise<number>((resolve) => this.addon.syncFs!(open, resolve))
      if (errno !== 0) throw uringError(-errno, 'syncfs', dir)
    } finally {
      this.calls.done()
    }
  }

  /** Waits for every call in progress, then closes the ring. The Io is unusable after. */
  async shutdown(): Promise<void> {
    this.shutdownStarted = true
    await this.calls.whenIdle()
    if (this.closed) return
    this.closed = true
    this.addon.close(this.ring)
    for (const fd of this.syncFsDirs.values()) await fd.then(closeAsync, () => {})
    this.syncFsDirs.clear()
  }

  async open(path: string, create: boolean): Promise<IoFile> {
    const flags = create ? fs.constants.O_RDWR | fs.constants.O_CREAT : fs.constants.O_RDWR
    return new UringFile(path, await openAsync(path, flags, 0o644))
  }

  writev(file: IoFile, buffers: readonly Uint8Array[], position: number, datasync: boolean, background = false): Promise<void> {
    const flags = background && this.syncFs !== undefined ? FLAG_BACKGROUND : 0
    return this.track(file, 'write', (open) => this.writevAll(open, buffers, position, datasync, flags))
  }

  read(file: IoFile, buffer: Uint8Array, position: number): Promise<number> {
    return this.track(file, 'read', (open) => this.readAll(open, buffer, position))
  }

  datasync(file: IoFile): Promise<void> {
    return this.track(file, 'fdatasync', (open) => this.sync(open))
  }

  async size(file: IoFile): Promise<number> {
    return (await fstatAsync(fdOf(file, 'fstat'))).size
  }

  async truncate(file: IoFile, size: number): Promise<void> {
    await ftruncateAsync(fdOf(file, 'ftruncate'), size)
  }

  async close(file: IoFile): Promise<void> {
    const open = fileOf(file)
    if (open.closed) throw uringError(-os.constants.errno.EBADF, 'close', open.path)
    open.closed = true
    await open.pending.whenIdle()
    await closeAsync(open.fd)
  }

  mkdirp(dir: string): Promise<void> {
    return this.fsIo.mkdirp(dir)
  }

  list(dir: string): Promise<string[]> {
    return this.fsIo.list(dir)
  }

  rename(from: string, to: string): Promise<void> {
    return this.fsIo.rename(from, to)
  }

  unlink(path: string): Promise<void> {
    return this.fsIo.unlink(path)
  }

  syncDir(dir: string): Promise<void> {
    return this.fsIo.syncDir(dir)
  }

  /** Runs one public call, counted for close(file) and shutdown(). */
  private async track<T>(file: IoFile, syscall: string, call: (file: UringFile) => Promise<T>): Promise<T> {
    if (this.shutdownStarted) throw new Error('UringIo is shut down')
    const open = fileOf(file)
    if (open.closed) throw uringError(-os.constants.errno.EBADF, syscall, open.path)
    this.calls.add()
    open.pending.add()
    try {
      return await call(open)
    } finally {
      open.pending.done()
      this.calls.done()
    }
  }

  private async writevAll(file: UringFile, buffers: readonly Uint8Array[], position: number, datasync: boolean, flags: number): Promise<void> {
    const nonEmpty = buffers.filter((buffer) => buffer.length > 0)
    if (nonEmpty.length === 0) {
      if (datasync) await this.sync(file)
      return
    }
    // The common case, a WAL batch, is one WRITEV with its fdatasync linked in one submit.
    // Larger batches go as parallel chunks and one fdatasync after them all: linking the
    // sync to the last chunk alone would not order it after the others.
    const linked = datasync && nonEmpty.length <= IOV_MAX
    const chunks: Array<{ buffers: Uint8Array[]; position: number }> = []
    for (let at = 0, bytes = position; at < nonEmpty.length; at += IOV_MAX) {
      const chunk = nonEmpty.slice(at, at + IOV_MAX)
      chunks.push({ buffers: chunk, position: bytes })
      bytes += byteLength(chunk)
    }
    const outcomes = await Promise.allSettled(chunks.map((chunk) => this.writeOnce(file, chunk.buffers, chunk.position, linked, flags)))
    // Settled together, so nothing of this call is still being written when it fails.
    for (const outcome of outcomes) if (outcome.status === 'rejected') throw outcome.reason
    let synced = linked
    for (const [index, chunk] of chunks.entries()) {
      const written = (outcomes[index] as PromiseFulfilledResult<number>).value
      if (written < byteLength(chunk.buffers)) {
        // A short write broke the link: its fdatasync came back ECANCELED and must be redone.
        await this.writeRest(file, remainder(chunk.buffers, written), chunk.position + written, flags)
        synced = false
      }
    }
    if (datasync && !synced) await this.sync(file)
  }

  private async writeRest(file: UringFile, buffers: Uint8Array[], position: number, flags: number): Promise<void> {
    while (buffers.length > 0) {
      const written = await this.writeOnce(file, buffers, position, false, flags)
      if (written === 0) throw uringError(-os.constants.errno.EIO, 'write', file.path)
      position += written
      buffers = remainder(buffers, written)
    }
  }

  /** One WRITEV (+ linked fdatasync); resolves to the bytes written, possibly short. */
  private writeOnce(file: UringFile, buffers: Uint8Array[], position: number, linkDatasync: boolean, flags: number): Promise<number> {
    const total = byteLength(buffers)
    return this.run<number>({
      prep: (addon, ring) => addon.prepWritev(ring, file.fd, buffers, position, flags | (linkDatasync ? FLAG_DATASYNC : 0)),
      parts: linkDatasync ? 2 : 1,
      settle: (request) => {
        if (request.res < 0) throw uringError(request.res, 'write', file.path)
        // The linked sync's result counts only when the write was whole; otherwise it
        // was cancelled (ECANCELED) and writevAll syncs again after finishing the write.
        if (linkDatasync && request.res === total && request.syncRes < 0) throw uringError(request.syncRes, 'fdatasync', file.path)
        return request.res
      },
    })
  }

  private async readAll(file: UringFile, buffer: Uint8Array, position: number): Promise<number> {
    let total = 0
    while (total < buffer.length) {
      const view = buffer.subarray(total, total + Math.min(buffer.length - total, READ_BYTES_MAX))
      const at = position + total
      const bytesRead = await this.run<number>({
        prep: (addon, ring) => addon.prepRead(ring, file.fd, view, at),
        parts: 1,
        settle: (request) => {
          if (request.res < 0) throw uringError(request.res, 'read', file.path)
          return request.res
        },
      })
      if (bytesRead === 0) break
      total += bytesRead
    }
    return total
  }

  private sync(file: UringFile): Promise<void> {
    return this.run<void>({
      prep: (addon, ring) => addon.prepFsync(ring, file.fd, FLAG_DATASYNC),
      parts: 1,
      settle: (request) => {
        if (request.res < 0) throw uringError(request.res, 'fdatasync', file.path)
      },
    })
  }

  /** Queues one ring request; `settle` turns its CQE results into a value or throws. */
  private run<T>(spec: { prep: Request['prep']; parts: number; settle: (request: Request) => T }): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const request: Request = {
        prep: spec.prep,
        parts: spec.parts,
        res: 0,
        syncRes: 0,
        finish: () => {
          try {
            resolve(spec.settle(request))
          } catch (error) {
            reject(error)
          }
        },
        fail: reject,
      }
      // Behind anything already waiting, so requests start in the order they were made.
      if (this.waiting.length > 0 || !this.start(request)) this.waiting.push(request)
      this.scheduleSubmit()
    })
  }

  /** Prepares `request` in a free slot; false when none is free. */
  private start(request: Request): boolean {
    let slot: number
    try {
      slot = request.prep(this.addon, this.ring)
    } catch (error) {
      // Argument validation in the addon; the request never reached the ring.
      request.fail(error)
      return true
    }
    if (slot < 0) return false
    this.inflight[slot] = request
    return true
  }

  /** One io_uring_enter for everything prepared in this tick. */
  private scheduleSubmit(): void {
    if (this.submitScheduled) return
    this.submitScheduled = true
    queueMicrotask(() => this.submit())
  }

  private submit(): void {
    this.submitScheduled = false
    if (this.closed) return
    // EAGAIN/EBUSY from the kernel left SQEs queued; nothing else would retry them.
    if (this.addon.submit(this.ring) > 0) setTimeout(() => this.submit(), SUBMIT_RETRY_MS)
  }

  /** The addon's completion callback: `count` triples (slot, res, part) per wake-up. */
  private complete(batch: Int32Array, count: number): void {
    const finished: Request[] = []
    for (let i = 0; i < count; i++) {
      const slot = batch[3 * i]!
      const res = batch[3 * i + 1]!
      const request = this.inflight[slot]
      if (request === undefined) throw new Error(`io_uring completion for idle slot ${slot}`)
      if (batch[3 * i + 2] === 1) request.syncRes = res
      else request.res = res
      if (--request.parts === 0) {
        this.inflight[slot] = undefined
        finished.push(request)
      }
    }
    // Fill the freed slots first, so waiting work goes out in this same wake-up.
    let started = 0
    while (started < this.waiting.length && this.start(this.waiting[started]!)) started++
    if (started > 0) {
      this.waiting = this.waiting.slice(started)
      this.submit()
    }
    for (const request of finished) request.finish()
  }
}
