// data-dir-lock.ts — one server per data directory (process-level, so not behind the Io seam). A LOCK file holds the owner's pid; a
// lock whose pid is no longer a running ringstream (a SIGKILLed server, a zombie, a reused
// pid) is taken over. (A lock held by the kernel, released however the process dies, is
// issue 15's; this narrows the pid check meanwhile.) Two live servers
// on one directory would interleave WAL writes and corrupt it, so the second one refuses.

import * as fs from 'node:fs'

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

export class DataDirLock {
  private constructor(private readonly path: string) {}

  static acquire(dataDir: string): DataDirLock {
    fs.mkdirSync(dataDir, { recursive: true })
    const path = `${dataDir}/LOCK`
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = fs.openSync(path, 'wx', 0o644)
        fs.writeSync(fd, `${process.pid}\n`)
        fs.closeSync(fd)
        return new DataDirLock(path)
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      }
      const owner = Number.parseInt(fs.readFileSync(path, 'utf8'), 10)
      if (Number.isInteger(owner) && owner !== process.pid && isRunningServer(owner)) {
        throw new Error(`data directory ${dataDir} is in use by another ringstream process (pid ${owner}); stop it first`)
      }
      fs.rmSync(path, { force: true })
    }
    throw new Error(`cannot take the lock on ${dataDir}`)
  }

  release(): void {
    fs.rmSync(this.path, { force: true })
  }
}
