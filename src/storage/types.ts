// storage/types.ts — the interface the stream engine stores through. Memory mode
// (storage/memory.ts) answers synchronously; the durable engine (storage/durable.ts) logs
// every change to the WAL with group commit and keeps stream bytes in per-stream files.
// Positions here are log-relative byte positions.

import type { Durability, ProducerHeaders } from '../protocol/headers.js'
import type { MaybePromise } from '../util/maybe.js'
import type { BoundaryIndex } from './boundary-index.js'

export interface StreamLog {
  /** Bytes staged in this log (committed or not). */
  readonly length: number
  /** Stages bytes at the end as one append; `messageEnds` (JSON logs) are relative to `bytes`.
   * `borrowed`: the caller reuses the memory of `bytes` after the call (a WAL read buffer
   * during replay), so a log must not keep a view of it. */
  append(bytes: Uint8Array, messageEnds?: readonly number[], borrowed?: boolean): void
  /** Where appends end (log-relative, staged ones included): every append but the last
   * starts where one of these is. */
  readonly appends: BoundaryIndex
  /** JSON logs: where messages end (after the ','). */
  readonly messages: BoundaryIndex | undefined
  /** Bytes up to `length` are durable (their change committed); a disk log may now write them out. */
  commit(length: number): void
  /** Drops staged bytes (and index entries) beyond `length` (rollback of a failed commit). */
  truncate(length: number): void
  /** Bytes [from, to), all committed, as views in order; without copying where the
   * backend allows (the caller joins them only if it must). A disk log reuses the buffer a
   * file read landed in once the event loop's current turn ends: send or copy the views
   * before then (every caller does so as soon as the read resolves), or pass `keep` when
   * the views must outlive it (a fork's read waits for its parent's read too). */
  read(from: number, to: number, keep?: boolean): MaybePromise<Uint8Array[]>
  /** Bytes [0, length) when the log keeps them in its registry entry rather than a file
   * (small streams, storage/segments/file-log.ts); undefined otherwise. */
  inlineAtMost?(length: number): Uint8Array | undefined
  /** Frees the log's storage; the log must not be used afterwards. */
  release(): void
  /** Nothing staged or waiting to be written: the stream may leave memory. */
  readonly idle: boolean
  /** The stream leaves memory (its files stay); drops what the log caches. */
  unload(): void
}

/** One append as stored: bytes plus, for JSON streams, message end offsets within them. */
export interface AppendChunk {
  readonly bytes: Uint8Array
  readonly messageEnds: readonly number[] | undefined
}

/** What a stream is: fixed at creation, recorded by both the WAL and checkpoints. */
export interface StreamDefinition {
  readonly path: string
  readonly contentType: string
  readonly ttlSeconds: number | undefined
  readonly expiresAtMs: number | undefined
  readonly durability: Durability
  readonly requestKey: string
  readonly parentId: number | undefined
  readonly base: number
}

export interface CreateChange extends StreamDefinition {
  readonly kind: 'create'
  readonly streamId: number
  readonly closed: boolean
  readonly chunks: readonly AppendChunk[]
}

export interface AppendChange {
  readonly kind: 'append'
  readonly streamId: number
  /** Stream position (absolute, including an inherited base) where the bytes start. */
  readonly position: number
  readonly chunk: AppendChunk | undefined
  readonly close: boolean
  readonly producer: ProducerHeaders | undefined
  readonly streamSeq: string | undefined
}

export interface DeleteChange {
  readonly kind: 'delete'
  readonly streamId: number
}

/** State that belongs to no stream (subscriptions): a key set to a value, or removed.
 * Stored by the WAL and checkpoints exactly like stream state; see storage/controls.ts. */
export interface ControlChange {
  readonly kind: 'control'
  readonly key: string
  /** Undefined: the key is removed. */
  readonly value: string | undefined
}

export type StreamChange = CreateChange | AppendChange | DeleteChange
export type Change = StreamChange | ControlChange

/** How much a log holds: its bytes and the entries of its indexes (messages: JSON only). */
export interface LogShape {
  readonly length: number
  /** Entries of the append-end index, and the last of them that are not in its file (see
   * StreamSnapshot.appendTail). */
  readonly appends: number
  readonly appendTail?: readonly number[]
  /** …and of the message-end index (JSON logs). */
  readonly messages: number | undefined
  readonly messageTail?: readonly number[]
  /** The bytes themselves, when the registry entry holds them (StreamSnapshot.inline). */
  readonly inline?: Uint8Array
}

export interface Storage {
  /** Name logged at startup, e.g. "memory" or "wal". */
  readonly kind: string
  /** A log for a new (empty) or recovered stream of the given class. */
  createLog(streamId: number, durability: Durability, shape: LogShape): StreamLog
  /** Persists a change. True: `done` is called once, later, when the change is durable for
   * its class (undefined) or failed (the error); false: it is done already and `done` is not
   * called. Throws what fails at once. A callback, not a promise: this runs per append. */
  commit(change: Change, durability: Durability, timeMs: number, done: (error: unknown) => void): boolean
  close(): Promise<void>
}

/** A stream's committed state as a checkpoint records it. */
export interface StreamSnapshot extends StreamDefinition {
  readonly id: number
  /** Own committed bytes (the data file holds at least these). */
  readonly length: number
  readonly closed: boolean
  readonly softDeleted: boolean
  readonly lastAccessMs: number
  readonly lastStreamSeq: string | undefined
  readonly producers: ReadonlyArray<readonly [string, number, number]>
  /** Durable forks reading through this stream. */
  readonly forkRefs: number
  /** Committed entries of the log's append-end index: the index file holds all but the
   * last `appendTail` (the part of its last page that is not full, fewer than 512). */
  readonly appendCount: number
  readonly appendTail: readonly number[]
  /** …and of its message-end index (JSON streams). */
  readonly messageCount: number | undefined
  readonly messageTail: readonly number[] | undefined
  /** All `length` bytes, when the entry holds them instead of a data file (a small stream
   * that never wrote one); undefined: the data file holds them. */
  readonly inline?: Uint8Array
}

/** A stream gone since the last checkpoint (deleted, expired, or a soft-deleted fork
 * source whose last fork went). */
export interface RemovedStream {
  readonly id: number
  readonly path: string
}

/** What the engine gives storage for a checkpoint: what changed since the last one. */
export interface EngineSnapshot {
  readonly nextStreamId: number
  /** Streams changed since the last checkpoint, as committed now. */
  readonly streams: readonly StreamSnapshot[]
  /** Their logs, to be flushed and synced before the snapshot is stored. */
  readonly logs: readonly StreamLog[]
  /** Streams gone since the last checkpoint. */
  readonly removed: readonly RemovedStream[]
  /** Control keys set (a value) or removed (undefined) since the last checkpoint. */
  readonly controls: ReadonlyMap<string, string | undefined>
  /** The checkpoint failed: these changes are still to be written. */
  restore(): void
  /** The checkpoint stored them. */
  stored(): void
}
