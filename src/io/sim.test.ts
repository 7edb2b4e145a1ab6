// SimIo-specific semantics: crash() durability (datasync, syncDir, torn tails, stale handles), failNext() faults and flipBit().

import { describe, expect, test, beforeEach } from 'vitest'
import { rejectionCode } from '../../test/expect-error.js'
import fc from 'fast-check'
import { SimIo } from './sim.js'
import type { IoFile } from './types.js'

const encoder = new TextEncoder()
const bytes = (text: string): Uint8Array => encoder.encode(text)


const DIR = '/data'
const FILE = `${DIR}/seg`

let io: SimIo

beforeEach(async () => {
  io = new SimIo()
  await io.mkdirp(DIR)
})

/** Creates FILE with `durable` content, datasync'd and with its name syncDir'd. */
async function durableFile(durable: string): Promise<IoFile> {
  const file = await io.open(FILE, true)
  await io.syncDir(DIR)
  if (durable.length > 0) await io.writev(file, [bytes(durable)], 0, true)
  return file
}

async function readAll(file: IoFile): Promise<Uint8Array> {
  const buffer = new Uint8Array(await io.size(file))
  expect(await io.read(file, buffer, 0)).toBe(buffer.length)
  return buffer
}

describe('crash durability', () => {
  test('data written with writev(…, true) survives crash()', async () => {
    await durableFile('')
    const file = await io.open(FILE, false)
    await io.writev(file, [bytes('abc'), bytes('def')], 0, true)
    io.crash()
    expect(io.contents(FILE)).toEqual(bytes('abcdef'))
    const reopened = await io.open(FILE, false)
    expect(await readAll(reopened)).toEqual(bytes('abcdef'))
  })

  test('data written and then datasync’d survives crash()', async () => {
    const file = await durableFile('')
    await io.writev(file, [bytes('hello')], 0, false)
    await io.writev(file, [bytes('!')], 7, false)
    await io.datasync(file)
    io.crash()
    expect(io.contents(FILE)).toEqual(new Uint8Array([...bytes('hello'), 0, 0, ...bytes('!')]))
  })

  test('data written but not synced is lost by crash()', async () => {
    const file = await durableFile('abc')
    await io.writev(file, [bytes('def')], 3, false)
    await io.writev(file, [bytes('X')], 0, false)
    expect(io.contents(FILE)).toEqual(bytes('Xbcdef'))
    io.crash()
    expect(io.contents(FILE)).toEqual(bytes('abc'))
    const reopened = await io.open(FILE, false)
    expect(await io.size(reopened)).toBe(3)
    expect(await readAll(reopened)).toEqual(bytes('abc'))
  })

  test('a file whose name is durable but whose data was never synced comes back empty', async () => {
    const file = await durableFile('')
    await io.writev(file, [bytes('lost')], 0, false)
    io.crash()
    expect(io.contents(FILE)).toEqual(new Uint8Array(0))
  })

  test('only writes after the last datasync are lost', async () => {
    const file = await durableFile('')
    await io.writev(file, [bytes('one')], 0, false)
    await io.datasync(file)
    await io.writev(file, [bytes('two')], 3, false)
    await io.datasync(file)
    await io.writev(file, [bytes('three')], 6, false)
    io.crash()
    expect(io.contents(FILE)).toEqual(bytes('onetwo'))
  })

  test('crash() twice in a row keeps the durable state', async () => {
    const file = await durableFile('stable')
    await io.writev(file, [bytes('gone')], 6, false)
    io.crash()
    io.crash()
    expect(io.contents(FILE)).toEqual(bytes('stable'))
  })
})

describe('crash(k): torn tail of unsynced writes', () => {
  // Durable 'AAAA', then unsynced writes in order: 'BBB'@4, 'CC'@7, 'DDD'@1.
  const cases: Array<[number, string]> = [
    [0, 'AAAA'],
    [1, 'AAAAB'],
    [2, 'AAAABB'],
    [3, 'AAAABBB'],
    [4, 'AAAABBBC'],
    [5, 'AAAABBBCC'],
    [6, 'ADAABBBCC'],
    [7, 'ADDABBBCC'],
    [8, 'ADDDBBBCC'],
    [9, 'ADDDBBBCC'],
    [1000, 'ADDDBBBCC'],
  ]

  test.each(cases)('crash(%i) keeps exactly that many unsynced bytes in write order', async (keep, expected) => {
    const file = await durableFile('AAAA')
    await io.writev(file, [bytes('BBB')], 4, false)
    await io.writev(file, [bytes('CC')], 7, false)
    await io.writev(file, [bytes('DDD')], 1, false)
    io.crash(keep)
    expect(new TextDecoder().decode(io.contents(FILE))).toBe(expected)
  })

  test('the cut can fall inside one buffer of a vectored write', async () => {
    const file = await durableFile('')
    await io.writev(file, [bytes('ab'), bytes('cdef'), bytes('g')], 0, false)
    io.crash(4)
    expect(io.contents(FILE)).toEqual(bytes('abcd'))
  })

  test('the torn tail is durable afterwards', async () => {
    const file = await durableFile('xy')
    await io.writev(file, [bytes('123456')], 2, false)
    io.crash(3)
    expect(io.contents(FILE)).toEqual(bytes('xy123'))
    io.crash()
    expect(io.contents(FILE)).toEqual(bytes('xy123'))
  })

  test('a torn tail past the durable end zero-fills the gap', async () => {
    const file = await durableFile('ab')
    await io.writev(file, [bytes('zzz')], 5, false)
    io.crash(2)
    expect(io.contents(FILE)).toEqual(new Uint8Array([...bytes('ab'), 0, 0, 0, ...bytes('zz')]))
  })

  test('property: crash(k) equals the durable bytes plus the first k unsynced bytes', async () => {
    const writeArb = fc.record({
      // Non-empty buffers only (see report: an empty buffer past the end extends a SimIo file).
      buffers: fc.array(fc.uint8Array({ minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 3 }),
      position: fc.nat({ max: 60 }),
    })
    await fc.assert(
      fc.asyncProperty(fc.array(writeArb, { maxLength: 4 }), fc.array(writeArb, { maxLength: 6 }), fc.nat({ max: 120 }), async (synced, unsynced, keep) => {
        io = new SimIo()
        await io.mkdirp(DIR)
        const file = await durableFile('')
        let model = new Uint8Array(0)
        const apply = (position: number, data: Uint8Array): void => {
          const end = position + data.length
          if (end > model.length) {
            const grown = new Uint8Array(end)
            grown.set(model)
            model = grown
          }
          model.set(data, position)
        }
        for (const write of synced) {
          await io.writev(file, write.buffers, write.position, true)
          let at = write.position
          for (const buffer of write.buffers) {
            apply(at, buffer)
            at += buffer.length
          }
        }
        let budget = keep
        for (const write of unsynced) {
          await io.writev(file, write.buffers, write.position, false)
          let at = write.position
          for (const buffer of write.buffers) {
            const kept = buffer.subarray(0, Math.max(0, Math.min(budget, buffer.length)))
            if (kept.length > 0) apply(at, kept)
            budget -= kept.length
            at += buffer.length
          }
        }
        io.crash(keep)
        expect(io.contents(FILE)).toEqual(model)
      }),
      { numRuns: 300 },
    )
  })
})

describe('crash: directory entries', () => {
  test('a file created but whose directory was never syncDir’d disappears', async () => {
    const file = await io.open(`${DIR}/new`, true)
    await io.writev(file, [bytes('data')], 0, true)
    expect(await io.list(DIR)).toEqual(['new'])
    io.crash()
    expect(io.contents(`${DIR}/new`)).toBeUndefined()
    expect(await io.list(DIR)).toEqual([])
    expect(await rejectionCode(io.open(`${DIR}/new`, false))).toBe('ENOENT')
  })

  test('after syncDir the created file survives with its synced data', async () => {
    const file = await io.open(`${DIR}/new`, true)
    await io.writev(file, [bytes('data')], 0, true)
    await io.syncDir(DIR)
    io.crash()
    expect(await io.list(DIR)).toEqual(['new'])
    expect(io.contents(`${DIR}/new`)).toEqual(bytes('data'))
  })

  test('syncDir of another directory does not make the file durable', async () => {
    await io.mkdirp('/other')
    const file = await io.open(`${DIR}/new`, true)
    await io.writev(file, [bytes('data')], 0, true)
    await io.syncDir('/other')
    await io.syncDir('/')
    io.crash()
    expect(await io.list(DIR)).toEqual([])
  })

  test('syncDir of a parent does not cover files in a subdirectory', async () => {
    await io.mkdirp(`${DIR}/sub`)
    await io.open(`${DIR}/sub/f`, true)
    await io.syncDir(DIR)
    io.crash()
    expect(await io.list(`${DIR}/sub`)).toEqual([])
  })

  test('a rename not followed by syncDir is undone by crash', async () => {
    const target = await io.open(`${DIR}/target`, true)
    await io.writev(target, [bytes('old')], 0, true)
    const source = await io.open(`${DIR}/target.tmp`, true)
    await io.writev(source, [bytes('new')], 0, true)
    await io.syncDir(DIR)

    await io.rename(`${DIR}/target.tmp`, `${DIR}/target`)
    expect(await io.list(DIR)).toEqual(['target'])
    expect(io.contents(`${DIR}/target`)).toEqual(bytes('new'))
    io.crash()
    expect([...(await io.list(DIR))].sort()).toEqual(['target', 'target.tmp'])
    expect(io.contents(`${DIR}/target`)).toEqual(bytes('old'))
    expect(io.contents(`${DIR}/target.tmp`)).toEqual(bytes('new'))
  })

  test('a rename followed by syncDir survives crash', async () => {
    const target = await io.open(`${DIR}/target`, true)
    await io.writev(target, [bytes('old')], 0, true)
    const source = await io.open(`${DIR}/target.tmp`, true)
    await io.writev(source, [bytes('new')], 0, true)
    await io.syncDir(DIR)

    await io.rename(`${DIR}/target.tmp`, `${DIR}/target`)
    await io.syncDir(DIR)
    io.crash()
    expect(await io.list(DIR)).toEqual(['target'])
    expect(io.contents(`${DIR}/target`)).toEqual(bytes('new'))
  })

  test('an unlink not followed by syncDir is undone by crash; with syncDir it sticks', async () => {
    const file = await io.open(`${DIR}/victim`, true)
    await io.writev(file, [bytes('still here')], 0, true)
    await io.syncDir(DIR)
    await io.unlink(`${DIR}/victim`)
    io.crash()
    expect(io.contents(`${DIR}/victim`)).toEqual(bytes('still here'))

    await io.unlink(`${DIR}/victim`)
    await io.syncDir(DIR)
    io.crash()
    expect(io.contents(`${DIR}/victim`)).toBeUndefined()
  })
})

describe('crash: stale handles', () => {
  test('handles opened before crash reject with EBADF after it', async () => {
    const file = await durableFile('abc')
    io.crash()
    expect(await rejectionCode(io.writev(file, [bytes('x')], 0, false))).toBe('EBADF')
    expect(await rejectionCode(io.writev(file, [bytes('x')], 0, true))).toBe('EBADF')
    expect(await rejectionCode(io.read(file, new Uint8Array(3), 0))).toBe('EBADF')
    expect(await rejectionCode(io.datasync(file))).toBe('EBADF')
    expect(await rejectionCode(io.size(file))).toBe('EBADF')
    expect(await rejectionCode(io.truncate(file, 0))).toBe('EBADF')
    expect(await rejectionCode(io.close(file))).toBe('EBADF')
    // The stale handle changed nothing; a fresh one works.
    expect(io.contents(FILE)).toEqual(bytes('abc'))
    const fresh = await io.open(FILE, false)
    expect(await readAll(fresh)).toEqual(bytes('abc'))
    await io.writev(fresh, [bytes('d')], 3, true)
    await io.close(fresh)
    expect(io.contents(FILE)).toEqual(bytes('abcd'))
  })

  test('a handle from before one crash is still stale after a second crash', async () => {
    const file = await durableFile('abc')
    io.crash()
    const middle = await io.open(FILE, false)
    io.crash()
    expect(await rejectionCode(io.size(file))).toBe('EBADF')
    expect(await rejectionCode(io.size(middle))).toBe('EBADF')
  })
})

describe('failNext faults', () => {
  test("failNext('writev', 'EIO', n) applies the first n bytes, rejects with EIO, then writev succeeds", async () => {
    const file = await durableFile('')
    io.failNext('writev', 'EIO', 4)
    expect(await rejectionCode(io.writev(file, [bytes('abc'), bytes('def')], 0, false))).toBe('EIO')
    expect(io.contents(FILE)).toEqual(bytes('abcd'))
    await io.writev(file, [bytes('XYZ')], 4, false)
    expect(io.contents(FILE)).toEqual(bytes('abcdXYZ'))
  })

  test('a failing writev with no partial bytes writes nothing', async () => {
    const file = await durableFile('keep')
    io.failNext('writev', 'ENOSPC')
    expect(await rejectionCode(io.writev(file, [bytes('zz')], 1, true))).toBe('ENOSPC')
    expect(io.contents(FILE)).toEqual(bytes('keep'))
  })

  test('a failing writev(…, true) does not make its partial bytes durable', async () => {
    const file = await durableFile('')
    io.failNext('writev', 'EIO', 2)
    expect(await rejectionCode(io.writev(file, [bytes('abcdef')], 0, true))).toBe('EIO')
    expect(io.contents(FILE)).toEqual(bytes('ab'))
    io.crash()
    expect(io.contents(FILE)).toEqual(new Uint8Array(0))
  })

  test('failNext faults queue: two in a row fail two writevs', async () => {
    const file = await durableFile('')
    io.failNext('writev', 'EIO')
    io.failNext('writev', 'ENOSPC')
    expect(await rejectionCode(io.writev(file, [bytes('a')], 0, false))).toBe('EIO')
    expect(await rejectionCode(io.writev(file, [bytes('a')], 0, false))).toBe('ENOSPC')
    await io.writev(file, [bytes('a')], 0, false)
    expect(io.contents(FILE)).toEqual(bytes('a'))
  })

  test("failNext('datasync', 'ENOSPC') rejects once with ENOSPC", async () => {
    const file = await durableFile('')
    await io.writev(file, [bytes('data')], 0, false)
    io.failNext('datasync', 'ENOSPC')
    // A fault on another op is not consumed by datasync.
    io.failNext('read', 'EIO')
    expect(await rejectionCode(io.datasync(file))).toBe('ENOSPC')
    await expect(io.datasync(file)).resolves.toBeUndefined()
    io.crash()
    expect(io.contents(FILE)).toEqual(bytes('data'))
  })

  test('a failed datasync leaves the data unsynced', async () => {
    const file = await durableFile('')
    await io.writev(file, [bytes('data')], 0, false)
    io.failNext('datasync', 'ENOSPC')
    expect(await rejectionCode(io.datasync(file))).toBe('ENOSPC')
    io.crash()
    expect(io.contents(FILE)).toEqual(new Uint8Array(0))
  })

  test("writev(…, true) applies its data but rejects when the datasync fault fires", async () => {
    const file = await durableFile('')
    io.failNext('datasync', 'EIO')
    expect(await rejectionCode(io.writev(file, [bytes('abc')], 0, true))).toBe('EIO')
    expect(io.contents(FILE)).toEqual(bytes('abc'))
    io.crash()
    expect(io.contents(FILE)).toEqual(new Uint8Array(0))
  })

  test('faults on other operations fire once each with their code', async () => {
    const file = await durableFile('abc')
    io.failNext('open', 'EIO')
    expect(await rejectionCode(io.open(FILE, false))).toBe('EIO')
    await io.open(FILE, false)

    io.failNext('read', 'EIO')
    expect(await rejectionCode(io.read(file, new Uint8Array(3), 0))).toBe('EIO')
    expect(await io.read(file, new Uint8Array(3), 0)).toBe(3)

    io.failNext('truncate', 'ENOSPC')
    expect(await rejectionCode(io.truncate(file, 10))).toBe('ENOSPC')
    expect(await io.size(file)).toBe(3)
    await io.truncate(file, 1)
    expect(await io.size(file)).toBe(1)

    io.failNext('rename', 'EIO')
    expect(await rejectionCode(io.rename(FILE, `${DIR}/moved`))).toBe('EIO')
    expect(await io.list(DIR)).toEqual(['seg'])
    await io.rename(FILE, `${DIR}/moved`)

    io.failNext('unlink', 'EIO')
    expect(await rejectionCode(io.unlink(`${DIR}/moved`))).toBe('EIO')
    expect(await io.list(DIR)).toEqual(['moved'])
    await io.unlink(`${DIR}/moved`)
    expect(await io.list(DIR)).toEqual([])

    io.failNext('syncDir', 'ENOSPC')
    expect(await rejectionCode(io.syncDir(DIR))).toBe('ENOSPC')
    await io.syncDir(DIR)
  })

  test('a failed syncDir does not make names durable', async () => {
    await io.open(`${DIR}/new`, true)
    io.failNext('syncDir', 'EIO')
    expect(await rejectionCode(io.syncDir(DIR))).toBe('EIO')
    io.crash()
    expect(await io.list(DIR)).toEqual([])
  })

  test('faults are cleared by crash()', async () => {
    await durableFile('abc')
    io.failNext('writev', 'EIO', 1)
    io.failNext('datasync', 'ENOSPC')
    io.failNext('open', 'EIO')
    io.failNext('syncDir', 'EIO')
    io.crash()
    const file = await io.open(FILE, false)
    await io.writev(file, [bytes('def')], 3, true)
    await io.datasync(file)
    await io.syncDir(DIR)
    expect(io.contents(FILE)).toEqual(bytes('abcdef'))
  })
})

describe('flipBit', () => {
  test('flips exactly one bit in both current and durable content', async () => {
    const original = bytes('abcdefgh')
    const file = await durableFile('abcdefgh')
    io.flipBit(FILE, 3)
    const flipped = io.contents(FILE)!
    expect(flipped.length).toBe(original.length)
    let differingBits = 0
    for (let i = 0; i < original.length; i++) {
      let diff = original[i]! ^ flipped[i]!
      if (i !== 3) expect(diff).toBe(0)
      while (diff !== 0) {
        differingBits += diff & 1
        diff >>= 1
      }
    }
    expect(differingBits).toBe(1)
    // Reads see the flipped bit.
    const read = new Uint8Array(1)
    expect(await io.read(file, read, 3)).toBe(1)
    expect(read[0]).toBe(flipped[3])
    // It is in the durable content too: it survives a crash.
    io.crash()
    expect(io.contents(FILE)).toEqual(flipped)
  })

  test('flipping the same bit twice restores the content', async () => {
    await durableFile('xyz')
    io.flipBit(FILE, 0)
    io.flipBit(FILE, 0)
    expect(io.contents(FILE)).toEqual(bytes('xyz'))
    io.crash()
    expect(io.contents(FILE)).toEqual(bytes('xyz'))
  })

  test('flipBit on a missing file throws', () => {
    expect(() => io.flipBit(`${DIR}/missing`, 0)).toThrow()
  })
})

describe('contents', () => {
  test('returns a copy, undefined for a missing file', async () => {
    await durableFile('abc')
    const copy = io.contents(FILE)!
    copy[0] = 0
    expect(io.contents(FILE)).toEqual(bytes('abc'))
    expect(io.contents(`${DIR}/missing`)).toBeUndefined()
  })
})

describe('edge cases found by the contract property', () => {
  test('a zero-length write past the end does not grow the file', async () => {
    const file = await io.open(`${DIR}/empty-write`, true)
    await io.writev(file, [new Uint8Array(0)], 100, false)
    expect(await io.size(file)).toBe(0)
  })

  test('an unsynced truncate is replayed in order by crash(k)', async () => {
    const file = await durableFile('abcdef')
    await io.truncate(file, 2)
    await io.writev(file, [bytes('Z')], 2, false)
    io.crash(100)
    const reopened = await io.open(file.path, false)
    expect(Buffer.from(await readAll(reopened)).toString()).toBe('abZ')
  })
})
