// io/node-fs.ts — the portable I/O backend on node:fs. Works everywhere Node does; the
// libuv thread pool carries each call. Vectored writes loop until every byte is written.

import * as fs from 'node:fs'
import { promisify } from 'node:util'
import { remainder } from './buffers.js'
import type { Io, IoFile } from './types.js'

const openAsync = promisify(fs.open)
const writevAsync = promisify(fs.writev)
const readAsync = promisify(fs.read)
const fdatasyncAsync = promisify(fs.fdatasync)
const fstatAsync = promisify(fs.fstat)
const ftruncateAsync = promisify(fs.ftruncate)
const closeAsync = promisify(fs.close)
/** Linux caps one writev at 1024 buffers (IOV_MAX). */
const IOV_MAX = 1024

class NodeFile implements IoFile {
  constructor(
    readonly path: string,
    readonly fd: number,
  ) {}
}

function fdOf(file: IoFile): number {
  return (file as NodeFile).fd
}

export class NodeFsIo implements Io {
  readonly name = 'node-fs'

  async open(path: string, create: boolean): Promise<IoFile> {
    const flags = create ? fs.constants.O_RDWR | fs.constants.O_CREAT : fs.constants.O_RDWR
    return new NodeFile(path, await openAsync(path, flags, 0o644))
  }

  async writev(file: IoFile, buffers: readonly Uint8Array[], position: number, datasync: boolean): Promise<void> {
    const fd = fdOf(file)
    let pending = buffers.filter((buffer) => buffer.length > 0)
    let at = position
    while (pending.length > 0) {
      const batch = pending.slice(0, IOV_MAX)
      const { bytesWritten } = await writevAsync(fd, batch as NodeJS.ArrayBufferView[], at)
      at += bytesWritten
      pending = remainder(pending, bytesWritten)
    }
    if (datasync) await fdatasyncAsync(fd)
  }

  async read(file: IoFile, buffer: Uint8Array, position: number): Promise<number> {
    const fd = fdOf(file)
    let total = 0
    while (total < buffer.length) {
      const { bytesRead } = await readAsync(fd, buffer, total, buffer.length - total, position + total)
      if (bytesRead === 0) break
      total += bytesRead
    }
    return total
  }

  async datasync(file: IoFile): Promise<void> {
    await fdatasyncAsync(fdOf(file))
  }

  async size(file: IoFile): Promise<number> {
    return (await fstatAsync(fdOf(file))).size
  }

  async truncate(file: IoFile, size: number): Promise<void> {
    await ftruncateAsync(fdOf(file), size)
  }

  async close(file: IoFile): Promise<void> {
    await closeAsync(fdOf(file))
  }

  async mkdirp(dir: string): Promise<void> {
    await fs.promises.mkdir(dir, { recursive: true })
  }

  async list(dir: string): Promise<string[]> {
    try {
      return await fs.promises.readdir(dir)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw error
    }
  }

  async rename(from: string, to: string): Promise<void> {
    await fs.promises.rename(from, to)
  }

  async unlink(path: string): Promise<void> {
    await fs.promises.unlink(path)
  }

  async syncDir(dir: string): Promise<void> {
    const fd = await openAsync(dir, fs.constants.O_RDONLY)
    try {
      await promisify(fs.fsync)(fd)
    } finally {
      await closeAsync(fd)
    }
  }
}
