// storage/data-dir-lock.ts: the kernel lock (flock through the addon) refuses a second holder and
// ignores what LOCK says; the pid-file fallback refuses a live ringstream's pid and takes
// over a dead one's. A SIGKILLed server's lock is tested end to end in test/integration/cli.test.ts.

import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, test } from 'vitest'
import { DataDirLock } from './data-dir-lock.js'

const dirs: string[] = []
const children: ChildProcess[] = []
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL')
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'rs-lock-'))
  dirs.push(dir)
  return dir
}

/** A live process whose command line says ringstream (what the pid-file check looks for). */
async function liveRingstreamLookalike(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000); console.log("up")', 'ringstream'], { stdio: ['ignore', 'pipe', 'ignore'] })
  children.push(child)
  await once(child.stdout!, 'data')
  return child
}

const kernel = DataDirLock.kernelLocking

describe.runIf(kernel !== undefined)('the kernel lock (addon flock)', () => {
  test('a second holder is refused, naming the first; released, it can be taken again', () => {
    const dir = tempDir()
    const lock = DataDirLock.acquire(dir, kernel!)
    expect(lock.kind).toBe('kernel')
    expect(readFileSync(join(dir, 'LOCK'), 'utf8')).toBe(`${process.pid}\n`)
    // Each acquire opens LOCK anew: flock refuses a second open file, in this process as in any other.
    expect(() => DataDirLock.acquire(dir, kernel!)).toThrow(`in use by another ringstream process (pid ${process.pid})`)
    lock.release()
    DataDirLock.acquire(dir, kernel!).release()
  })

  test('what LOCK says does not matter: a live ringstream pid left in it does not block', async () => {
    const dir = tempDir()
    const other = await liveRingstreamLookalike()
    writeFileSync(join(dir, 'LOCK'), `${other.pid}\n`)
    expect(() => DataDirLock.acquire(dir, null)).toThrow(`(pid ${other.pid})`)
    const lock = DataDirLock.acquire(dir, kernel!)
    expect(readFileSync(join(dir, 'LOCK'), 'utf8')).toBe(`${process.pid}\n`)
    lock.release()
  })
})

describe('the pid-file lock (no addon)', () => {
  test('refuses while the named ringstream lives, takes over once it is gone', async () => {
    const dir = tempDir()
    const other = await liveRingstreamLookalike()
    writeFileSync(join(dir, 'LOCK'), `${other.pid}\n`)
    expect(() => DataDirLock.acquire(dir, null)).toThrow(`in use by another ringstream process (pid ${other.pid})`)
    other.kill('SIGKILL')
    await once(other, 'exit')
    const lock = DataDirLock.acquire(dir, null)
    expect(lock.kind).toBe('pid file')
    lock.release()
  })
})
