// storage/data-dir-lock.ts — one server per data directory (process-level, so not behind the Io
// seam). Two live servers on one directory would interleave WAL writes and corrupt it, so
// the second one refuses. Where the native addon loads (Linux), the lock is the kernel's:
// an exclusive flock(2) on <data-dir>/LOCK, held through an open descriptor and dropped
// by the kernel when the process ends however it ends (kill -9, OOM, power cut), so a
// restart never finds a stale lock. LOCK also names the holder's pid, for the message.
// Without the addon (macOS, no compiler) LOCK is a pid file instead: a pid that is no
// longer a running ringstream (a SIGKILLed server, a zombie, a reused pid) is taken over.

import * as fs from 'node:fs'
import { loadNativeAddon } from '../io/native-loader.js'

const EWOULDBLOCK = 11

/** The addon's part of the lock (native/addon.cc). */
export interface LockingAddon {
  lockFile(fd: number): number
}

function lockingAddon(): LockingAddon | undefined {
  const addon = loadNativeAddon().addon as Partial<LockingAddon> | undefined
  // A prebuilt binary from before lockFile existed has none: the pid file serves then.
  return typeof addon?.lockFile === 'function' ? (addon as LockingAddon) : undefined
}

/** Whether `pid` is a live ringstream server. On Linux /proc tells: a zombie (a killed server
 * its parent has not reaped yet) is not live, and a pid now used by another program (reused
 * after a reboot or in a new container) is not a ringstream. Elsewhere: signal 0. */
function isRunningServer(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') return false
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('ringstream')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && fs.existsSync('/proc/self/stat')) return false
  }
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function inUse(dataDir: string, owner: string): Error {
  const pid = Number.parseInt(owner, 10)
  return new Error(`data directory ${dataDir} is in use by another ringstream process${Number.isInteger(pid) ? ` (pid ${pid})` : ''}; stop it first`)
}

export class DataDirLock {
  private constructor(
    private readonly path: string,
    /** The descriptor holding the kernel lock; undefined for a pid-file lock. */
    private readonly fd: number | undefined,
  ) {}

  /** How this process holds the lock: "kernel" (flock) or "pid file". */
  get kind(): string {
    return this.fd === undefined ? 'pid file' : 'kernel'
  }

  /** `locking`: the addon's flock, or null for the pid file (tests choose; servers take the addon when it loads). */
  static acquire(dataDir: string, locking: LockingAddon | null = lockingAddon() ?? null): DataDirLock {
    fs.mkdirSync(dataDir, { recursive: true })
    const path = `${dataDir}/LOCK`
    return locking === null ? DataDirLock.acquirePidFile(dataDir, path) : DataDirLock.acquireKernel(dataDir, path, locking)
  }

  /** The addon's flock when it loads, else undefined. */
  static get kernelLocking(): LockingAddon | undefined {
    return lockingAddon()
  }

  private static acquireKernel(dataDir: string, path: string, addon: LockingAddon): DataDirLock {
    const fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644)
    const error = addon.lockFile(fd)
    if (error !== 0) {
      const owner = fs.readFileSync(path, 'utf8')
      fs.closeSync(fd)
      if (error === EWOULDBLOCK) throw inUse(dataDir, owner)
      throw new Error(`cannot lock ${path}: flock failed with errno ${error}`)
    }
    // Overwritten in place, then cut: on a full disk the file's block is reused, not needed
    // anew (and a LOCK created on a full disk simply names no pid: the lock is the flock).
    const text = `${process.pid}\n`
    try {
      fs.writeSync(fd, text, 0)
      fs.ftruncateSync(fd, Buffer.byteLength(text))
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error
    }
    return new DataDirLock(path, fd)
  }

  private static acquirePidFile(dataDir: string, path: string): DataDirLock {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = fs.openSync(path, 'wx', 0o644)
        fs.writeSync(fd, `${process.pid}\n`)
        fs.closeSync(fd)
        return new DataDirLock(path, undefined)
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      }
      const owner = fs.readFileSync(path, 'utf8')
      const pid = Number.parseInt(owner, 10)
      if (Number.isInteger(pid) && pid !== process.pid && isRunningServer(pid)) throw inUse(dataDir, owner)
      fs.rmSync(path, { force: true })
    }
    throw new Error(`cannot take the lock on ${dataDir}`)
  }

  release(): void {
    if (this.fd === undefined) {
      fs.rmSync(this.path, { force: true })
      return
    }
    // The file stays (unlinking it could let a starting server lock a new file while another
    // still holds this one); closing the descriptor drops the lock.
    try {
      fs.ftruncateSync(this.fd, 0)
    } finally {
      fs.closeSync(this.fd)
    }
  }
}
