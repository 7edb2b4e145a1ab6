// streams/transfer.ts — a stream moved whole from one node to another (cluster/moves.ts
// drives it): read out as its definition, its bytes in message-aligned pieces (the stored
// bytes themselves, so every offset stays what it was) and its final state (closed,
// producers, Stream-Seq); written in on the other node as the same WAL changes a client's
// requests make (create, appends, then the state), so it is durable, replicated and
// recovered like any stream. A fork moves as the bytes it reads (its source's up to the fork
// point, then its own): on the new node it is a stream of its own with the same offsets. A
// stream forks still read through is not moved (its forks move first, then it can).

import { StreamError } from '../protocol/errors.js'
import { type Durability, isJsonContentType, parseContentType } from '../protocol/headers.js'
import type { AppendChange, AppendChunk, Change } from '../storage/types.js'
import { type MaybePromise, andThen } from '../util/maybe.js'
import type { Engine } from './engine.js'
import type { Stream, StreamConfig } from './stream.js'

/** What a moved stream is, fixed at its creation. */
export interface MovedDefinition {
  readonly contentType: string
  readonly ttlSeconds: number | undefined
  readonly expiresAtMs: number | undefined
  readonly durability: Durability
  readonly requestKey: string
}

/** Where a moved stream ends up once its bytes are in. */
export interface MovedState {
  readonly tail: number
  readonly closed: boolean
  readonly producers: ReadonlyArray<readonly [string, number, number]>
  readonly lastStreamSeq: string | undefined
  /** When it was last read or written (a sliding TTL counts from it). */
  readonly lastAccessMs?: number
}

/** Bytes of a moved stream from `position`, with their JSON message ends (relative). */
export interface MovedPiece {
  readonly position: number
  readonly bytes: Uint8Array
  readonly messageEnds: readonly number[] | undefined
}

/** Why `stream` cannot be moved whole, or undefined when it can. */
export function unmovable(stream: Stream): string | undefined {
  if (stream.forkRefs > 0) return 'forks read through it'
  if (stream.softDeleted || stream.deletion !== undefined) return 'it is deleted'
  return undefined
}

export function definitionOf(stream: Stream): MovedDefinition {
  const { config } = stream
  return { contentType: config.contentType.value, ttlSeconds: config.ttlSeconds, expiresAtMs: config.expiresAtMs, durability: config.durability, requestKey: config.requestKey }
}

/** The state once every change handed to storage has settled. */
export async function settledState(stream: Stream): Promise<MovedState> {
  while (stream.lastCommit !== undefined) await stream.lastCommit.promise().catch(() => {})
  return {
    tail: stream.tail,
    closed: stream.closed,
    producers: stream.producers === undefined ? [] : [...stream.producers].map(([id, state]) => [id, state.epoch, state.lastSeq] as const),
    lastStreamSeq: stream.lastStreamSeq,
  }
}

/** The stored bytes [from, next piece) of at most ~bytesMax, message-aligned, with message ends. */
export function readPiece(engine: Engine, stream: Stream, from: number, bytesMax: number): MaybePromise<MovedPiece> {
  return andThen(stream.readEnd(from, bytesMax), (end) =>
    andThen(stream.readCopy(from, end), (bytes) => {
      if (!stream.config.json) return { position: from, bytes, messageEnds: undefined }
      return andThen(stream.messagesWithin(from, end, Number.MAX_SAFE_INTEGER), (within) => ({ position: from, bytes, messageEnds: within.ends.map((at) => at - from) }))
    }),
  )
}

/** Creates `path` here as a moved stream, empty; its bytes follow with appendPiece. */
export function createMoved(engine: Engine, path: string, definition: MovedDefinition): MaybePromise<Stream> {
  if (engine.registry.find(path) !== undefined) throw new StreamError('CONFIG_MISMATCH', `${path} exists here already: it is not moved over it`)
  const contentType = parseContentType(definition.contentType)
  const config: StreamConfig = {
    contentType,
    json: isJsonContentType(contentType),
    ttlSeconds: definition.ttlSeconds,
    expiresAtMs: definition.expiresAtMs,
    durability: definition.durability,
    requestKey: definition.requestKey,
  }
  const stream = engine.newStream(engine.nextStreamId, path, config, undefined, 0)
  stream.creating = true
  engine.registry.add(stream)
  const change: Change = { kind: 'create', streamId: stream.id, path, contentType: config.contentType.value, ttlSeconds: config.ttlSeconds, expiresAtMs: config.expiresAtMs, durability: config.durability, requestKey: config.requestKey, parentId: undefined, base: 0, closed: false, chunks: [] }
  const onCommit = (): void => {
    stream.creating = false
  }
  return engine.commit(stream, change, onCommit, () => engine.registry.discard(stream), () => stream)
}

/** Appends a piece of a moved stream's bytes, verbatim, at its tail. */
export function appendPiece(engine: Engine, stream: Stream, piece: MovedPiece): MaybePromise<void> {
  if (piece.position !== stream.stagedTail) throw new StreamError('INVALID_OFFSET', `a moved piece at ${piece.position}: the stream ends at ${stream.stagedTail}`)
  const chunk: AppendChunk = { bytes: piece.bytes, messageEnds: stream.config.json ? piece.messageEnds ?? [] : undefined }
  const change: AppendChange = { kind: 'append', streamId: stream.id, position: piece.position, chunk, close: false, producer: undefined, streamSeq: undefined }
  stream.appendBytes(chunk.bytes, chunk.messageEnds)
  const end = stream.stagedTail
  const onCommit = (): void => {
    engine.registry.markChanged(stream)
    stream.commitBytes(end)
  }
  return engine.commit(stream, change, onCommit, () => stream.rollback(), () => undefined)
}

/** Gives a moved stream its final state (after all its bytes): producers, Stream-Seq, closed. */
export async function finishMoved(engine: Engine, stream: Stream, state: MovedState): Promise<void> {
  if (stream.stagedTail !== state.tail) throw new StreamError('INVALID_OFFSET', `a moved stream ends at ${stream.stagedTail}, its source at ${state.tail}`)
  const changes: AppendChange[] = state.producers.map(([id, epoch, seq], i) => ({
    kind: 'append',
    streamId: stream.id,
    position: stream.stagedTail,
    chunk: undefined,
    close: state.closed && i === state.producers.length - 1,
    producer: { id, epoch, seq },
    streamSeq: i === 0 ? state.lastStreamSeq : undefined,
  }))
  if (changes.length === 0 && (state.closed || state.lastStreamSeq !== undefined)) {
    changes.push({ kind: 'append', streamId: stream.id, position: stream.stagedTail, chunk: undefined, close: state.closed, producer: undefined, streamSeq: state.lastStreamSeq })
  }
  // A sliding TTL goes on counting from the source's last access, not from the move.
  if (state.lastAccessMs !== undefined) stream.lastAccessMs = state.lastAccessMs
  for (const change of changes) {
    const { producer, streamSeq, close } = change
    if (producer !== undefined) (stream.staged.producers ??= new Map()).set(producer.id, { epoch: producer.epoch, lastSeq: producer.seq })
    if (streamSeq !== undefined) stream.staged.lastStreamSeq = streamSeq
    if (close) stream.staged.closed = true
    await engine.commit(stream, change, () => {
      engine.registry.markChanged(stream)
      if (producer !== undefined) (stream.producers ??= new Map()).set(producer.id, { epoch: producer.epoch, lastSeq: producer.seq })
      if (streamSeq !== undefined) stream.lastStreamSeq = streamSeq
      if (close) stream.closed = true
    }, () => stream.rollback(), () => undefined)
  }
}
