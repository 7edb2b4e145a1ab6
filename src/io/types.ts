// io/types.ts — the I/O seam: the few batched file operations storage needs. Implementations:
// node-fs.ts (portable), sim.ts (in-memory, fault-injecting) and, later, uring.ts. Storage
// code receives an Io and never touches node:fs itself, so the simulator can stand in.

/** An open file; opaque to callers. */
export interface IoFile {
  readonly path: string
}

export interface Io {
  /** Backend name as logged at startup. */
  readonly name: string
  /** Opens (creating if asked) a file for reading and writing. */
  open(path: string, create: boolean): Promise<IoFile>
  /** Writes all buffers contiguously at `position`; with `datasync` the data is on stable
   * storage when the promise resolves. A short write is completed or becomes an error.
   * `background`: no request waits on this write (a data file's, written after the WAL
   * made its bytes durable), so the backend may do it off the event loop's thread. */
  writev(file: IoFile, buffers: readonly Uint8Array[], position: number, datasync: boolean, background?: boolean): Promise<void>
  /** Reads into `buffer` from `position`; returns bytes read (short only at end of file). */
  read(file: IoFile, buffer: Uint8Array, position: number): Promise<number>
  datasync(file: IoFile): Promise<void>
  size(file: IoFile): Promise<number>
  truncate(file: IoFile, size: number): Promise<void>
  close(file: IoFile): Promise<void>
  mkdirp(dir: string): Promise<void>
  /** Entry names (not paths) in a directory; empty if it does not exist. */
  list(dir: string): Promise<string[]>
  /** Atomically replaces `to` with `from`. */
  rename(from: string, to: string): Promise<void>
  unlink(path: string): Promise<void>
  /** Makes creates, renames and unlinks in `dir` durable. */
  syncDir(dir: string): Promise<void>
  /** Where the backend has it (syncfs(2)): makes every completed write, create, rename and
   * unlink on the file system holding `dir` durable, in one call. A checkpoint that wrote
   * many files uses it instead of a datasync each. */
  syncFs?(dir: string): Promise<void>
}

/** Errors carry the errno code (EIO, ENOSPC, ENOENT, …) like Node's own. */
export function isIoError(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code
}
