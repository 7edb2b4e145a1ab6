// io/sim.ts — an in-memory, deterministic I/O backend for fault injection. It tracks what
// is durable (datasync'd content, syncDir'd names, or everything at a syncFs) separately from what is merely written,
// so crash() can drop everything unsynced — optionally keeping a torn prefix of the
// unsynced writes — and failNext() can make the next operation fail with EIO or ENOSPC.

import type { Io, IoFile } from './types.js'

type Op = 'open' | 'writev' | 'read' | 'datasync' | 'truncate' | 'rename' | 'unlink' | 'syncDir' | 'syncFs'

class Content {
  bytes = new Uint8Array(0)
  length = 0

  clone(): Content {
    const copy = new Content()
    copy.bytes = this.bytes.slice(0, this.length)
    copy.length = this.length
    return copy
  }

  write(position: number, data: Uint8Array): void {
    const end = position + data.length
    if (end > this.bytes.length) {
      const grown = new Uint8Array(Math.max(end, this.bytes.length * 2))
      grown.set(this.bytes.subarray(0, this.length))
      this.bytes = grown
    }
    if (position > this.length) this.bytes.fill(0, this.length, position)
    this.bytes.set(data, position)
    this.length = Math.max(this.length, end)
  }

  truncate(size: number): void {
    if (size > this.length) this.write(this.length, new Uint8Array(size - this.length))
    this.length = size
  }
}

type UnsyncedOp = { kind: 'write'; position: number; data: Uint8Array } | { kind: 'truncate'; size: number }

interface Inode {
  current: Content
  durable: Content
  /** Writes and truncates since the last datasync, in order (for torn-write crashes). */
  unsynced: UnsyncedOp[]
}

class SimFile implements IoFile {
  closed = false

  constructor(
    readonly path: string,
    readonly inode: Inode,
    readonly generation: number,
  ) {}
}

export class SimError extends Error {
  constructor(
    readonly code: string,
    op: string,
  ) {
    super(`${code}: simulated failure in ${op}`)
  }
}

function dirOf(path: string): string {
  const slash = path.lastIndexOf('/')
  return slash <= 0 ? '/' : path.slice(0, slash)
}

export class SimIo implements Io {
  readonly name = 'sim'
  private names = new Map<string, Inode>()
  private durableNames = new Map<string, Inode>()
  private dirs = new Set<string>(['/'])
  private generation = 0
  private faults: Array<{ op: Op; code: string; partialBytes: number }> = []

  /** The next `op` fails with `code`; a failing writev first applies `partialBytes`. */
  failNext(op: Op, code: 'EIO' | 'ENOSPC', partialBytes = 0): void {
    this.faults.push({ op, code, partialBytes })
  }

  /** Power cut: unsynced data and names are lost; `keepUnsyncedBytes` of the unsynced
   * writes (in order, the last one possibly cut) survive as a torn tail. */
  crash(keepUnsyncedBytes = 0): void {
    this.generation++
    const inodes = new Set([...this.names.values(), ...this.durableNames.values()])
    for (const inode of inodes) {
      const survivor = inode.durable.clone()
      let budget = keepUnsyncedBytes
      for (const op of inode.unsynced) {
        if (budget <= 0) break
        if (op.kind === 'truncate') {
          survivor.truncate(op.size)
          continue
        }
        const kept = op.data.subarray(0, Math.min(budget, op.data.length))
        survivor.write(op.position, kept)
        budget -= kept.length
      }
      inode.current = survivor
      inode.durable = survivor.clone()
      inode.unsynced = []
    }
    this.names = new Map(this.durableNames)
    this.faults = []
  }

  /** The disk as a new machine would find it after a power cut now; this instance (the
   * dying process's view) is left as it was, so that process can be shut down harmlessly. */
  crashed(keepUnsyncedBytes = 0): SimIo {
    const copy = new SimIo()
    const clones = new Map<Inode, Inode>()
    const cloneOf = (inode: Inode): Inode => {
      let clone = clones.get(inode)
      if (clone === undefined) {
        clone = { current: inode.current.clone(), durable: inode.durable.clone(), unsynced: [...inode.unsynced] }
        clones.set(inode, clone)
      }
      return clone
    }
    for (const [path, inode] of this.names) copy.names.set(path, cloneOf(inode))
    for (const [path, inode] of this.durableNames) copy.durableNames.set(path, cloneOf(inode))
    copy.dirs = new Set(this.dirs)
    copy.crash(keepUnsyncedBytes)
    return copy
  }

  /** Test access: the current bytes of a file. */
  contents(path: string): Uint8Array | undefined {
    const inode = this.names.get(path)
    return inode?.current.bytes.slice(0, inode.current.length)
  }

  /** Test access: flip one bit of a file's durable and current content. */
  flipBit(path: string, position: number): void {
    const inode = this.names.get(path)
    if (inode === undefined) throw new Error(`no file ${path}`)
    inode.current.bytes[position]! ^= 1
    inode.durable.bytes[position]! ^= 1
  }

  private fault(op: Op): { code: string; partialBytes: number } | undefined {
    const index = this.faults.findIndex((fault) => fault.op === op)
    if (index === -1) return undefined
    return this.faults.splice(index, 1)[0]
  }

  private check(op: Op): void {
    const fault = this.fault(op)
    if (fault !== undefined) throw new SimError(fault.code, op)
  }

  private live(file: IoFile): Inode {
    const sim = file as SimFile
    if (sim.generation !== this.generation) throw new SimError('EBADF', 'stale handle after crash')
    if (sim.closed) throw new SimError('EBADF', `use of ${sim.path} after close`)
    return sim.inode
  }

  async open(path: string, create: boolean): Promise<IoFile> {
    this.check('open')
    let inode = this.names.get(path)
    if (inode === undefined) {
      if (!create) throw new SimError('ENOENT', `open ${path}`)
      if (!this.dirs.has(dirOf(path))) throw new SimError('ENOENT', `open ${path} (no directory)`)
      inode = { current: new Content(), durable: new Content(), unsynced: [] }
      this.names.set(path, inode)
    }
    return new SimFile(path, inode, this.generation)
  }

  async writev(file: IoFile, buffers: readonly Uint8Array[], position: number, datasync: boolean): Promise<void> {
    const inode = this.live(file)
    const fault = this.fault('writev')
    let at = position
    let budget = fault === undefined ? Number.POSITIVE_INFINITY : fault.partialBytes
    for (const buffer of buffers) {
      if (buffer.length === 0) continue
      const data = buffer.slice(0, Math.min(buffer.length, budget))
      inode.current.write(at, data)
      inode.unsynced.push({ kind: 'write', position: at, data })
      at += data.length
      budget -= data.length
      if (budget <= 0) break
    }
    if (fault !== undefined) throw new SimError(fault.code, 'writev')
    if (datasync) await this.datasync(file)
  }

  async read(file: IoFile, buffer: Uint8Array, position: number): Promise<number> {
    const inode = this.live(file)
    this.check('read')
    const available = Math.max(0, Math.min(buffer.length, inode.current.length - position))
    buffer.set(inode.current.bytes.subarray(position, position + available))
    return available
  }

  async datasync(file: IoFile): Promise<void> {
    const inode = this.live(file)
    this.check('datasync')
    inode.durable = inode.current.clone()
    inode.unsynced = []
  }

  async size(file: IoFile): Promise<number> {
    return this.live(file).current.length
  }

  async truncate(file: IoFile, size: number): Promise<void> {
    const inode = this.live(file)
    this.check('truncate')
    inode.current.truncate(size)
    inode.unsynced.push({ kind: 'truncate', size })
  }

  async close(file: IoFile): Promise<void> {
    this.live(file)
    ;(file as SimFile).closed = true
  }

  async mkdirp(dir: string): Promise<void> {
    let path = dir
    while (path !== '/' && path !== '.' && !this.dirs.has(path)) {
      this.dirs.add(path)
      path = dirOf(path)
    }
  }

  async list(dir: string): Promise<string[]> {
    const prefix = dir.endsWith('/') ? dir : `${dir}/`
    return [...this.names.keys()].filter((path) => path.startsWith(prefix) && !path.slice(prefix.length).includes('/')).map((path) => path.slice(prefix.length))
  }

  async rename(from: string, to: string): Promise<void> {
    this.check('rename')
    const inode = this.names.get(from)
    if (inode === undefined) throw new SimError('ENOENT', `rename ${from}`)
    this.names.delete(from)
    this.names.set(to, inode)
  }

  async unlink(path: string): Promise<void> {
    this.check('unlink')
    if (!this.names.delete(path)) throw new SimError('ENOENT', `unlink ${path}`)
  }

  async syncDir(dir: string): Promise<void> {
    this.check('syncDir')
    const prefix = dir.endsWith('/') ? dir : `${dir}/`
    const inDir = (path: string): boolean => path.startsWith(prefix) && !path.slice(prefix.length).includes('/')
    for (const path of [...this.durableNames.keys()]) if (inDir(path) && !this.names.has(path)) this.durableNames.delete(path)
    for (const [path, inode] of this.names) if (inDir(path)) this.durableNames.set(path, inode)
  }

  /** One file system: every file's content and every name become durable. */
  async syncFs(_dir: string): Promise<void> {
    this.check('syncFs')
    for (const inode of this.names.values()) {
      inode.durable = inode.current.clone()
      inode.unsynced = []
    }
    this.durableNames = new Map(this.names)
  }
}
