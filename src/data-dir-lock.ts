// data-dir-lock.ts — one server per data directory (process-level, so not behind the Io seam). A LOCK file holds the owner's pid; a
// lock whose pid is no longer running (a SIGKILLed server) is taken over. Two live servers
// on one directory would interleave WAL writes and corrupt it, so the second one refuses.

import * as fs from 'node:fs'

function isRunning(pid: number): boolean {
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
      if (Number.isInteger(owner) && owner !== process.pid && isRunning(owner)) {
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
