// storage/types.ts — the interface the stream engine stores bytes through.
// Memory mode implements it with growable buffers (storage/memory.ts); the durable engine
// (WAL + segments) implements the same surface. Positions here are log-relative bytes.

export interface StreamLog {
  /** Bytes held by this log. */
  readonly length: number
  /** Appends bytes at the end; they are readable immediately after this returns. */
  append(bytes: Uint8Array): void
  /** Returns bytes [from, to) without copying where the backend allows. */
  read(from: number, to: number): Uint8Array
  /** Frees the log's storage; the log must not be used afterwards. */
  release(): void
}

export interface Storage {
  /** Name logged at startup, e.g. "memory". */
  readonly kind: string
  createLog(): StreamLog
  close(): Promise<void>
}
