// io/uring.test.ts — UringIo on the real addon, beyond the shared contract suite: errno
// errors and their shape, ECANCELED on a linked fdatasync, short writes and reads finished
// in TypeScript, IOV_MAX chunking, slot backpressure, shutdown, setup failures, and that a
// process with an idle ring exits by itself. Wrappers around the addon force the rare paths.

import { execFile } from 'node:child_process'
import * as fs from 'node:fs'
import { createRequire } from 'node:module'
import * as os from 'node:os'
import * as path from 'node:path'
import { promisify } from 'node:util'
import ts from 'typescript'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { rejectionCode } from '../../test/expect-error.js'
import { isIoError, type IoFile } from './types.js'
import { IOV_MAX, UringIo, type UringAddon } from './uring.js'

const execFileAsync = promisify(execFile)
const require = createRequire(import.meta.url)

/** The local build via `bindings`, if it loads and io_uring_setup works here. */
function loadAddon(): UringAddon | undefined {
  try {
    const addon = (require('bindings') as (name: string) => UringAddon)('ringstream')
    void new UringIo(addon, 1).shutdown()
    return addon
  } catch (error) {
    // CI sets this where io_uring must work, so a broken build cannot pass as a skip.
    if (process.env.RINGSTREAM_REQUIRE_URING === '1') throw error
    return undefined
  }
}

const addon = loadAddon()
const addonPath = addon === undefined ? '' : (addon as unknown as { path: string }).path
const errno = os.constants.errno
const bytes = (text: string): Uint8Array => new TextEncoder().encode(text)

/** Counts what the addon is asked to do and records every completion triple. */
function spy(base: UringAddon, overrides: Partial<UringAddon> = {}) {
  const seen = { refused: 0, writevs: [] as number[], fsyncs: 0, closes: 0, triples: [] as Array<[number, number, number]> }
  const wrapped: UringAddon = {
    ...base,
    create: (slots, onCompletions) =>
      base.create(slots, (batch, count) => {
        for (let i = 0; i < count; i++) seen.triples.push([batch[3 * i]!, batch[3 * i + 1]!, batch[3 * i + 2]!])
        onCompletions(batch, count)
      }),
    prepWritev: (ring, fd, buffers, position, flags) => {
      const slot = (overrides.prepWritev ?? base.prepWritev)(ring, fd, buffers, position, flags)
      if (slot < 0) seen.refused++
      else seen.writevs.push(buffers.length)
      return slot
    },
    prepRead: (ring, fd, buffer, position) => {
      const slot = (overrides.prepRead ?? base.prepRead)(ring, fd, buffer, position)
      if (slot < 0) seen.refused++
      return slot
    },
    prepFsync: (ring, fd, flags) => {
      const slot = base.prepFsync(ring, fd, flags)
      if (slot < 0) seen.refused++
      else seen.fsyncs++
      return slot
    },
    close: (ring) => {
      seen.closes++
      base.close(ring)
    },
  }
  return { addon: wrapped, seen }
}

describe.skipIf(addon === undefined)('UringIo on io_uring', () => {
  const real = addon!
  let dir: string
  const ios: UringIo[] = []
  const make = (base: UringAddon = real, slots?: number): UringIo => {
    const io = new UringIo(base, slots)
    ios.push(io)
    return io
  }

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ringstream-uring-test-'))
  })

  afterEach(async () => {
    for (const io of ios.splice(0)) await io.shutdown()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  test('background writes (IOSQE_ASYNC) land like any other, errors included; syncFs syncs a directory\'s file system and names a bad one', async () => {
    const io = make()
    const file = await io.open(path.join(dir, 'bg'), true)
    await io.writev(file, [bytes('back'), bytes('ground')], 0, false, true)
    await io.writev(file, [bytes('!')], 10, true, true)
    expect(fs.readFileSync(path.join(dir, 'bg'), 'utf8')).toBe('background!')
    await io.close(file)
    const full = await io.open('/dev/full', false)
    expect(await rejectionCode(io.writev(full, [bytes('x')], 0, false, true))).toBe('ENOSPC')
    await io.close(full)
    expect(io.syncFs).toBeTypeOf('function')
    await io.syncFs!(dir)
    await io.syncFs!(dir)
    expect(await rejectionCode(io.syncFs!(path.join(dir, 'missing')))).toBe('ENOENT')
    fs.writeFileSync(path.join(dir, 'plain'), 'x')
    expect(await rejectionCode(io.syncFs!(path.join(dir, 'plain')))).toBe('ENOTDIR')
  })

  test('a write error rejects with the errno code, shaped like node:fs errors', async () => {
    const io = make()
    const full = await io.open('/dev/full', false)
    const error = (await io.writev(full, [bytes('x')], 0, false).catch((caught: unknown) => caught)) as NodeJS.ErrnoException
    expect(isIoError(error, 'ENOSPC')).toBe(true)
    expect(error.errno).toBe(-errno.ENOSPC)
    expect(error.syscall).toBe('write')
    expect(error.message).toMatch(/^ENOSPC: /)
    // The same fields node:fs gives for the same failure.
    const fd = fs.openSync('/dev/full', 'w')
    try {
      fs.writeSync(fd, bytes('x'))
    } catch (nodeError) {
      expect({ code: error.code, errno: error.errno, syscall: error.syscall }).toEqual({
        code: (nodeError as NodeJS.ErrnoException).code,
        errno: (nodeError as NodeJS.ErrnoException).errno,
        syscall: (nodeError as NodeJS.ErrnoException).syscall,
      })
    } finally {
      fs.closeSync(fd)
    }
    await io.close(full)
  })

  test('a failed write with a linked fdatasync rejects once; the cancelled sync is absorbed', async () => {
    const readOnly = fs.openSync(path.join(dir, 'ro'), 'w')
    fs.closeSync(readOnly)
    const roFd = fs.openSync(path.join(dir, 'ro'), 'r')
    // The file's own fd is swapped for a read-only one, so the kernel answers EBADF.
    const { addon: wrapped, seen } = spy(real, { prepWritev: (ring, _fd, buffers, position, flags) => real.prepWritev(ring, roFd, buffers, position, flags) })
    const io = make(wrapped)
    const file = await io.open(path.join(dir, 'f'), true)
    expect(await rejectionCode(io.writev(file, [bytes('abc')], 0, true))).toBe('EBADF')
    expect(seen.triples).toContainEqual([expect.any(Number), -errno.ECANCELED, 1])
    expect(await rejectionCode(io.writev(file, [bytes('abc'), bytes('d')], 0, true))).toBe('EBADF')
    // The ring is still healthy afterwards.
    await io.datasync(file)
    expect(await io.read(file, new Uint8Array(4), 0)).toBe(0)
    fs.closeSync(roFd)
    await io.close(file)
  })

  test('ENOSPC with datasync rejects ENOSPC, not ECANCELED', async () => {
    const io = make()
    const full = await io.open('/dev/full', false)
    expect(await rejectionCode(io.writev(full, [bytes('x'), bytes('y')], 0, true))).toBe('ENOSPC')
    await io.close(full)
  })

  test('an fd closed under the ring gives EBADF; a closed IoFile gives EBADF at once', async () => {
    const { addon: wrapped } = spy(real, { prepRead: (ring, _fd, buffer, position) => real.prepRead(ring, 0x7fffffff, buffer, position) })
    const io = make(wrapped)
    const file = await io.open(path.join(dir, 'f'), true)
    expect(await rejectionCode(io.read(file, new Uint8Array(4), 0))).toBe('EBADF')
    await io.close(file)
    expect(await rejectionCode(io.writev(file, [bytes('x')], 0, false))).toBe('EBADF')
    expect(await rejectionCode(io.read(file, new Uint8Array(1), 0))).toBe('EBADF')
    expect(await rejectionCode(io.close(file))).toBe('EBADF')
  })

  test('short writes are finished by resubmitting the rest, then synced', async () => {
    // Each WRITEV carries only part of what was asked, as a short write would.
    const { addon: wrapped, seen } = spy(real, {
      prepWritev: (ring, fd, buffers, position, flags) => {
        const first = buffers[0]!
        const part = buffers.length > 1 ? [first] : [first.subarray(0, Math.ceil(first.length / 2))]
        return real.prepWritev(ring, fd, part, position, flags)
      },
    })
    const io = make(wrapped)
    const file = await io.open(path.join(dir, 'short'), true)
    await io.writev(file, [bytes('hello'), bytes(' '), bytes('short writes')], 3, true)
    expect(seen.writevs.length).toBeGreaterThan(3)
    expect(seen.fsyncs).toBe(1)
    const all = new Uint8Array(21)
    expect(await io.read(file, all, 0)).toBe(21)
    expect(all).toEqual(new Uint8Array([0, 0, 0, ...bytes('hello short writes')]))
    await io.close(file)
  })

  test('a real short write (RLIMIT_FSIZE) is continued, and the rest fails with EFBIG', async () => {
    const modules = buildChildModules(dir)
    const script = path.join(modules, 'fsize.mjs')
    fs.writeFileSync(
      script,
      `import { createRequire } from 'node:module'
       import { UringIo } from './uring.js'
       const io = new UringIo(createRequire(import.meta.url)(process.argv[2]))
       const file = await io.open(process.argv[3], true)
       const code = await io.writev(file, [new Uint8Array(600), new Uint8Array(600)], 0, true).then(() => 'ok', (error) => error.code)
       console.log(JSON.stringify({ code, size: await io.size(file) }))`,
    )
    const { stdout } = await execFileAsync('prlimit', ['--fsize=1000', process.execPath, script, addonPath, path.join(dir, 'big')], { timeout: 10_000 })
    expect(JSON.parse(stdout)).toEqual({ code: 'EFBIG', size: 1000 })
  })

  test('short reads loop until the buffer is full or the file ends', async () => {
    const { addon: wrapped } = spy(real, {
      prepRead: (ring, fd, buffer, position) => real.prepRead(ring, fd, buffer.subarray(0, Math.min(3, buffer.length)), position),
    })
    const io = make(wrapped)
    const file = await io.open(path.join(dir, 'r'), true)
    await io.writev(file, [bytes('0123456789')], 0, false)
    const buffer = new Uint8Array(8)
    expect(await io.read(file, buffer, 1)).toBe(8)
    expect(buffer).toEqual(bytes('12345678'))
    expect(await io.read(file, new Uint8Array(20), 4)).toBe(6)
    await io.close(file)
  })

  test('more than IOV_MAX buffers go as IOV_MAX chunks, then one fdatasync', async () => {
    const { addon: wrapped, seen } = spy(real)
    const io = make(wrapped)
    const file = await io.open(path.join(dir, 'wide'), true)
    const buffers = Array.from({ length: 2 * IOV_MAX + 5 }, (_, i) => new Uint8Array([i & 0xff, i >> 8]))
    await io.writev(file, buffers, 0, true)
    expect(seen.writevs).toEqual([IOV_MAX, IOV_MAX, 5])
    expect(seen.fsyncs).toBe(1)
    const all = new Uint8Array(buffers.length * 2)
    expect(await io.read(file, all, 0)).toBe(all.length)
    for (let i = 0; i < buffers.length; i++) expect([all[2 * i], all[2 * i + 1]]).toEqual([i & 0xff, i >> 8])
    await io.close(file)
  })

  test('many more concurrent operations than slots all complete (backpressure)', async () => {
    const { addon: wrapped, seen } = spy(real)
    const io = make(wrapped, 2)
    const file = await io.open(path.join(dir, 'busy'), true)
    const writes = Array.from({ length: 300 }, (_, i) => io.writev(file, [new Uint8Array([i & 0xff]), new Uint8Array([i >> 8])], 2 * i, i % 10 === 0))
    const syncs = Array.from({ length: 20 }, () => io.datasync(file))
    await Promise.all([...writes, ...syncs])
    expect(seen.refused).toBeGreaterThan(0)
    const reads = Array.from({ length: 300 }, async (_, i) => {
      const pair = new Uint8Array(2)
      expect(await io.read(file, pair, 2 * i)).toBe(2)
      return pair
    })
    const pairs = await Promise.all(reads)
    pairs.forEach((pair, i) => expect([...pair]).toEqual([i & 0xff, i >> 8]))
    await io.close(file)
  })

  test('close(file) waits for the calls in progress on it', async () => {
    const io = make()
    const file = await io.open(path.join(dir, 'c'), true)
    const write = io.writev(file, [bytes('before close')], 0, true)
    await Promise.all([write, io.close(file)])
    expect(fs.readFileSync(path.join(dir, 'c'), 'utf8')).toBe('before close')
  })

  test('shutdown waits for work in flight, closes the ring once, and refuses new work', async () => {
    const { addon: wrapped, seen } = spy(real)
    const io = new UringIo(wrapped)
    const file: IoFile = await io.open(path.join(dir, 's'), true)
    let written = false
    const write = io.writev(file, [bytes('last')], 0, true).then(() => (written = true))
    await io.shutdown()
    expect(written).toBe(true)
    await write
    await io.shutdown()
    expect(seen.closes).toBe(1)
    await expect(io.datasync(file)).rejects.toThrow(/shut down/)
    await io.close(file)
  })

  test('io_uring_setup failure surfaces as an Error with the errno code', async () => {
    // With every fd taken, io_uring_setup fails with EMFILE, as EPERM would in a container.
    const script = `const addon = require(process.argv[1]); const fs = require('node:fs'); const held = []
      try { for (;;) held.push(fs.openSync('/dev/null', 'r')) } catch {}
      try { addon.create(4, () => {}) } catch (error) { console.log(JSON.stringify({ code: error.code, syscall: error.syscall, errno: error.errno })) }`
    const { stdout } = await execFileAsync('prlimit', ['--nofile=64:64', process.execPath, '-e', script, addonPath], { timeout: 10_000 })
    expect(JSON.parse(stdout)).toEqual({ code: 'EMFILE', syscall: 'io_uring_setup', errno: -errno.EMFILE })
  })

  test('a process whose ring is idle exits by itself; one in flight keeps it alive until done', async () => {
    const modules = buildChildModules(dir)
    const script = path.join(modules, 'exit.mjs')
    fs.writeFileSync(
      script,
      `import { createRequire } from 'node:module'
       import { UringIo } from './uring.js'
       const io = new UringIo(createRequire(import.meta.url)(process.argv[2]))
       const file = await io.open(process.argv[3], true)
       // Not awaited: only the ring's in-flight request keeps the loop alive now.
       io.writev(file, [new TextEncoder().encode('from the child')], 0, true).then(() => console.log('written'))`,
    )
    const started = Date.now()
    const { stdout } = await execFileAsync(process.execPath, [script, addonPath, path.join(dir, 'child')], { timeout: 10_000 })
    expect(stdout.trim()).toBe('written')
    expect(Date.now() - started).toBeLessThan(5_000)
    expect(fs.readFileSync(path.join(dir, 'child'), 'utf8')).toBe('from the child')
  })
})

/** Compiles uring.ts and what it imports into `dir`/modules, for child processes. */
function buildChildModules(dir: string): string {
  const out = path.join(dir, 'modules')
  fs.mkdirSync(out, { recursive: true })
  for (const name of ['uring', 'node-fs', 'buffers', 'types']) {
    const source = fs.readFileSync(new URL(`./${name}.ts`, import.meta.url), 'utf8')
    const compiled = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 } })
    fs.writeFileSync(path.join(out, `${name}.js`), compiled.outputText)
  }
  fs.writeFileSync(path.join(out, 'package.json'), '{ "type": "module" }')
  return out
}
