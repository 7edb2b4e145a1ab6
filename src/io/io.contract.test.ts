// Shared Io contract suite (open/writev/read/size/truncate/sync/list/rename/unlink/mkdirp), run against NodeFsIo and
// UringIo on real files and SimIo in memory.

import * as fs from 'node:fs'
import * as os from 'node:os'
import { describe, expect, test, beforeEach, afterEach } from 'vitest'
import { rejectionCode } from '../../test/expect-error.js'
import { uringAddon, uringUnavailable } from '../../test/uring-available.js'
import fc from 'fast-check'
import { NodeFsIo } from './node-fs.js'
import { SimIo } from './sim.js'
import { UringIo } from './uring.js'
import type { Io, IoFile } from './types.js'

const encoder = new TextEncoder()
const bytes = (text: string): Uint8Array => encoder.encode(text)

/** Reads a whole file through the Io (size, then one read). */
async function readAll(io: Io, file: IoFile): Promise<Uint8Array> {
  const size = await io.size(file)
  const buffer = new Uint8Array(size)
  const read = await io.read(file, buffer, 0)
  expect(read).toBe(size)
  return buffer
}


/** The in-test model: a plain growable byte array with POSIX pwrite/ftruncate semantics. */
class ByteModel {
  data = new Uint8Array(0)

  writev(buffers: readonly Uint8Array[], position: number): void {
    const total = buffers.reduce((sum, buffer) => sum + buffer.length, 0)
    if (total === 0) return
    const end = position + total
    if (end > this.data.length) {
      const grown = new Uint8Array(end)
      grown.set(this.data)
      this.data = grown
    }
    let at = position
    for (const buffer of buffers) {
      this.data.set(buffer, at)
      at += buffer.length
    }
  }

  truncate(size: number): void {
    const next = new Uint8Array(size)
    next.set(this.data.subarray(0, Math.min(size, this.data.length)))
    this.data = next
  }
}

type ModelOp =
  | { kind: 'writev'; buffers: Uint8Array[]; position: number; datasync: boolean }
  | { kind: 'truncate'; size: number }

const bufferArb = fc.uint8Array({ minLength: 0, maxLength: 40 })
const opArb: fc.Arbitrary<ModelOp> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('writev' as const),
      // At least one non-empty buffer: a writev of only empty buffers is left out (see report:
      // SimIo extends the file on a zero-length write past the end, node-fs does not).
      buffers: fc.array(bufferArb, { minLength: 1, maxLength: 6 }).filter((buffers) => buffers.some((buffer) => buffer.length > 0)),
      position: fc.nat({ max: 300 }),
      // Occasional datasync only: on a real disk each one is an fsync.
      datasync: fc.nat({ max: 9 }).map((n) => n === 0),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), size: fc.nat({ max: 300 }) }) },
)

function ioContract(
  name: string,
  makeIo: () => Io,
  makeDir: () => { dir: string; cleanup: () => void },
  release: (io: Io) => Promise<void> = async () => {},
): void {
  describe(`Io contract: ${name}`, () => {
    let io: Io
    let dir: string
    let cleanup: () => void
    const open: IoFile[] = []

    beforeEach(async () => {
      io = makeIo()
      ;({ dir, cleanup } = makeDir())
      await io.mkdirp(dir)
    })

    afterEach(async () => {
      for (const file of open.splice(0)) await io.close(file).catch(() => undefined)
      cleanup()
      await release(io)
    })

    async function create(fileName: string): Promise<IoFile> {
      const file = await io.open(`${dir}/${fileName}`, true)
      open.push(file)
      return file
    }

    async function closeFile(file: IoFile): Promise<void> {
      open.splice(open.indexOf(file), 1)
      await io.close(file)
    }

    test('has a name', () => {
      expect(typeof io.name).toBe('string')
      expect(io.name.length).toBeGreaterThan(0)
    })

    test('open with create=false on a missing file rejects with ENOENT', async () => {
      expect(await rejectionCode(io.open(`${dir}/missing`, false))).toBe('ENOENT')
      expect(await io.list(dir)).toEqual([])
    })

    test('open with create=true in a missing directory rejects with ENOENT', async () => {
      expect(await rejectionCode(io.open(`${dir}/no-such-dir/file`, true))).toBe('ENOENT')
    })

    test('open with create=true makes an empty file and lists it', async () => {
      const file = await create('fresh')
      expect(file.path).toBe(`${dir}/fresh`)
      expect(await io.size(file)).toBe(0)
      expect(await io.list(dir)).toEqual(['fresh'])
    })

    test('open with create=true on an existing file keeps its content', async () => {
      const first = await create('keep')
      await io.writev(first, [bytes('hello')], 0, false)
      await closeFile(first)
      const second = await create('keep')
      expect(await readAll(io, second)).toEqual(bytes('hello'))
    })

    test('writev writes several buffers contiguously at the position', async () => {
      const file = await create('f')
      await io.writev(file, [bytes('abc'), bytes('de'), bytes('fghij')], 0, false)
      expect(await io.size(file)).toBe(10)
      expect(await readAll(io, file)).toEqual(bytes('abcdefghij'))
      // Overwrite in the middle with a second vectored write.
      await io.writev(file, [bytes('X'), bytes('YZ')], 3, false)
      expect(await readAll(io, file)).toEqual(bytes('abcXYZghij'))
      expect(await io.size(file)).toBe(10)
    })

    test('writev skips empty buffers without leaving gaps', async () => {
      const file = await create('f')
      const empty = new Uint8Array(0)
      await io.writev(file, [empty, bytes('ab'), empty, empty, bytes('c'), empty], 2, false)
      expect(await readAll(io, file)).toEqual(new Uint8Array([0, 0, ...bytes('abc')]))
    })

    test('writev with no buffers is a no-op', async () => {
      const file = await create('f')
      await io.writev(file, [bytes('abc')], 0, false)
      await io.writev(file, [], 1, false)
      expect(await readAll(io, file)).toEqual(bytes('abc'))
    })

    test('writev of more than IOV_MAX (1024) buffers writes them all in order', async () => {
      const file = await create('many')
      const buffers: Uint8Array[] = []
      for (let i = 0; i < 3000; i++) {
        const length = i % 7 === 0 ? 0 : (i % 3) + 1
        buffers.push(new Uint8Array(length).fill((i * 31 + 7) & 0xff))
      }
      const expected = new Uint8Array(buffers.reduce((sum, buffer) => sum + buffer.length, 0))
      let at = 0
      for (const buffer of buffers) {
        expected.set(buffer, at)
        at += buffer.length
      }
      await io.writev(file, [bytes('head')], 0, false)
      await io.writev(file, buffers, 4, true)
      expect(await io.size(file)).toBe(4 + expected.length)
      const all = await readAll(io, file)
      expect(all.subarray(0, 4)).toEqual(bytes('head'))
      expect(all.subarray(4)).toEqual(expected)
    })

    test('writev of many non-empty buffers crossing several batches', async () => {
      const file = await create('many2')
      const buffers = Array.from({ length: 2049 }, (_, i) => new Uint8Array([i & 0xff, (i >> 8) & 0xff]))
      await io.writev(file, buffers, 0, false)
      const all = await readAll(io, file)
      expect(all.length).toBe(2049 * 2)
      for (let i = 0; i < 2049; i++) {
        expect(all[2 * i]).toBe(i & 0xff)
        expect(all[2 * i + 1]).toBe((i >> 8) & 0xff)
      }
    })

    test('writev past the end zero-fills the gap', async () => {
      const file = await create('gap')
      await io.writev(file, [bytes('ab')], 0, false)
      await io.writev(file, [bytes('cd'), bytes('e')], 10, false)
      expect(await io.size(file)).toBe(13)
      expect(await readAll(io, file)).toEqual(new Uint8Array([...bytes('ab'), 0, 0, 0, 0, 0, 0, 0, 0, ...bytes('cde')]))
    })

    test('writev past the end of an empty file zero-fills from 0', async () => {
      const file = await create('gap0')
      await io.writev(file, [bytes('z')], 5, false)
      expect(await readAll(io, file)).toEqual(new Uint8Array([0, 0, 0, 0, 0, ...bytes('z')]))
    })

    test('read returns the bytes, a short count at end of file and 0 past the end', async () => {
      const file = await create('r')
      await io.writev(file, [bytes('0123456789')], 0, false)

      const middle = new Uint8Array(4)
      expect(await io.read(file, middle, 3)).toBe(4)
      expect(middle).toEqual(bytes('3456'))

      const tail = new Uint8Array(16).fill(0xee)
      expect(await io.read(file, tail, 4)).toBe(6)
      expect(tail.subarray(0, 6)).toEqual(bytes('456789'))
      // Bytes beyond the short count are left alone.
      expect(tail.subarray(6).every((byte) => byte === 0xee)).toBe(true)

      const atEnd = new Uint8Array(4).fill(0xee)
      expect(await io.read(file, atEnd, 10)).toBe(0)
      expect(atEnd.every((byte) => byte === 0xee)).toBe(true)
      expect(await io.read(file, new Uint8Array(4), 1000)).toBe(0)
      expect(await io.read(file, new Uint8Array(0), 2)).toBe(0)
    })

    test('read into a subarray view fills only that view', async () => {
      const file = await create('view')
      await io.writev(file, [bytes('abcdef')], 0, false)
      const backing = new Uint8Array(10).fill(0xee)
      expect(await io.read(file, backing.subarray(3, 6), 2)).toBe(3)
      expect([...backing]).toEqual([0xee, 0xee, 0xee, ...bytes('cde'), 0xee, 0xee, 0xee, 0xee])
    })

    test('size follows writes and truncates', async () => {
      const file = await create('s')
      expect(await io.size(file)).toBe(0)
      await io.writev(file, [bytes('abc')], 0, false)
      expect(await io.size(file)).toBe(3)
      await io.writev(file, [bytes('d')], 1, false)
      expect(await io.size(file)).toBe(3)
      await io.writev(file, [bytes('e')], 7, false)
      expect(await io.size(file)).toBe(8)
    })

    test('truncate shrinks and grows; the grown part reads as zeros', async () => {
      const file = await create('t')
      await io.writev(file, [bytes('abcdefgh')], 0, false)
      await io.truncate(file, 3)
      expect(await io.size(file)).toBe(3)
      expect(await readAll(io, file)).toEqual(bytes('abc'))
      expect(await io.read(file, new Uint8Array(4), 3)).toBe(0)

      await io.truncate(file, 7)
      expect(await io.size(file)).toBe(7)
      // The old bytes 'defg' must not come back.
      expect(await readAll(io, file)).toEqual(new Uint8Array([...bytes('abc'), 0, 0, 0, 0]))

      await io.truncate(file, 0)
      expect(await io.size(file)).toBe(0)
      await io.writev(file, [bytes('xy')], 4, false)
      expect(await readAll(io, file)).toEqual(new Uint8Array([0, 0, 0, 0, ...bytes('xy')]))
    })

    test('datasync and writev(..., true) resolve and keep the data', async () => {
      const file = await create('sync')
      await expect(io.writev(file, [bytes('ab'), bytes('cd')], 0, true)).resolves.toBeUndefined()
      await expect(io.datasync(file)).resolves.toBeUndefined()
      await io.writev(file, [bytes('e')], 4, false)
      await expect(io.datasync(file)).resolves.toBeUndefined()
      expect(await readAll(io, file)).toEqual(bytes('abcde'))
    })

    test('a file reopened after close reads what was written', async () => {
      const path = `${dir}/reopen`
      const file = await io.open(path, true)
      await io.writev(file, [bytes('persist'), bytes('ed')], 0, false)
      await io.truncate(file, 12)
      await io.writev(file, [bytes('!')], 12, true)
      await io.close(file)
      const again = await io.open(path, false)
      open.push(again)
      expect(again.path).toBe(path)
      expect(await io.size(again)).toBe(13)
      expect(await readAll(io, again)).toEqual(new Uint8Array([...bytes('persisted'), 0, 0, 0, ...bytes('!')]))
    })

    test('two handles on one file see each other’s writes', async () => {
      const a = await create('shared')
      const b = await create('shared')
      await io.writev(a, [bytes('from-a')], 0, false)
      expect(await readAll(io, b)).toEqual(bytes('from-a'))
    })

    test('list returns file names only, and [] for a missing directory', async () => {
      await io.mkdirp(`${dir}/sub`)
      for (const fileName of ['b.log', 'a.log', 'c']) await closeFile(await create(`sub/${fileName}`))
      await closeFile(await create('top'))
      const names = await io.list(`${dir}/sub`)
      expect([...names].sort()).toEqual(['a.log', 'b.log', 'c'])
      for (const name of names) expect(name).not.toContain('/')
      expect(await io.list(`${dir}/sub/`).then((list) => [...list].sort())).toEqual(['a.log', 'b.log', 'c'])
      expect(await io.list(`${dir}/nope`)).toEqual([])
      expect(await io.list(`${dir}/nope/deeper`)).toEqual([])
    })

    test('rename moves a file', async () => {
      const file = await create('from')
      await io.writev(file, [bytes('moved')], 0, true)
      await closeFile(file)
      await io.rename(`${dir}/from`, `${dir}/to`)
      expect(await io.list(dir)).toEqual(['to'])
      expect(await rejectionCode(io.open(`${dir}/from`, false))).toBe('ENOENT')
      const moved = await io.open(`${dir}/to`, false)
      open.push(moved)
      expect(await readAll(io, moved)).toEqual(bytes('moved'))
    })

    test('rename atomically replaces an existing target', async () => {
      const target = await create('target')
      await io.writev(target, [bytes('old target content')], 0, true)
      const source = await create('source.tmp')
      await io.writev(source, [bytes('new')], 0, true)
      await closeFile(source)

      await io.rename(`${dir}/source.tmp`, `${dir}/target`)
      expect(await io.list(dir)).toEqual(['target'])
      const replaced = await io.open(`${dir}/target`, false)
      open.push(replaced)
      expect(await readAll(io, replaced)).toEqual(bytes('new'))
      // A handle opened before the rename still sees the replaced file's bytes.
      expect(await readAll(io, target)).toEqual(bytes('old target content'))
    })

    test('rename of a missing file rejects with ENOENT', async () => {
      expect(await rejectionCode(io.rename(`${dir}/ghost`, `${dir}/other`))).toBe('ENOENT')
    })

    test('unlink removes the name; an open handle keeps working', async () => {
      const file = await create('doomed')
      await io.writev(file, [bytes('bye')], 0, false)
      await closeFile(await create('kept'))
      await io.unlink(`${dir}/doomed`)
      expect(await io.list(dir)).toEqual(['kept'])
      expect(await rejectionCode(io.open(`${dir}/doomed`, false))).toBe('ENOENT')
      expect(await readAll(io, file)).toEqual(bytes('bye'))
      // A new file under the same name starts empty.
      const reborn = await create('doomed')
      expect(await io.size(reborn)).toBe(0)
    })

    test('unlink of a missing file rejects with ENOENT', async () => {
      expect(await rejectionCode(io.unlink(`${dir}/ghost`))).toBe('ENOENT')
    })

    test('mkdirp is recursive and idempotent', async () => {
      const deep = `${dir}/a/b/c`
      await io.mkdirp(deep)
      await io.mkdirp(deep)
      await io.mkdirp(`${dir}/a/b`)
      await io.mkdirp(dir)
      const file = await io.open(`${deep}/leaf`, true)
      open.push(file)
      await io.writev(file, [bytes('x')], 0, false)
      expect(await io.list(deep)).toEqual(['leaf'])
      const mid = await io.open(`${dir}/a/mid`, true)
      open.push(mid)
      // Only the file is asserted: whether subdirectory names are listed differs (see report).
      expect(await io.list(`${dir}/a`)).toContain('mid')
    })

    test('syncDir resolves for a directory with creates, renames and unlinks', async () => {
      await closeFile(await create('one'))
      await closeFile(await create('two'))
      await io.rename(`${dir}/one`, `${dir}/three`)
      await io.unlink(`${dir}/two`)
      await expect(io.syncDir(dir)).resolves.toBeUndefined()
      expect(await io.list(dir)).toEqual(['three'])
      await io.mkdirp(`${dir}/empty`)
      await expect(io.syncDir(`${dir}/empty`)).resolves.toBeUndefined()
    })

    test('property: random writev/truncate sequences match a byte-array model', async () => {
      let run = 0
      await fc.assert(
        fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 20 }), async (ops) => {
          const path = `${dir}/model-${run++}`
          const file = await io.open(path, true)
          const model = new ByteModel()
          try {
            for (const op of ops) {
              if (op.kind === 'writev') {
                await io.writev(file, op.buffers, op.position, op.datasync)
                model.writev(op.buffers, op.position)
              } else {
                await io.truncate(file, op.size)
                model.truncate(op.size)
              }
              expect(await io.size(file)).toBe(model.data.length)
            }
            expect(await readAll(io, file)).toEqual(model.data)
          } finally {
            await io.close(file)
            await io.unlink(path)
          }
        }),
        { numRuns: 100 },
      )
    })
  })
}

ioContract(
  'NodeFsIo',
  () => new NodeFsIo(),
  () => {
    const dir = fs.mkdtempSync(`${os.tmpdir()}/ringstream-io-`)
    return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) }
  },
)

ioContract(
  'SimIo',
  () => new SimIo(),
  () => ({ dir: '/data', cleanup: () => undefined }),
)

describe.skipIf(uringUnavailable !== undefined)('uring', () => {
  ioContract(
    'UringIo',
    () => new UringIo(uringAddon()),
    () => {
      const dir = fs.mkdtempSync(`${os.tmpdir()}/ringstream-uring-`)
      return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) }
    },
    (io) => (io as UringIo).shutdown(),
  )
})
