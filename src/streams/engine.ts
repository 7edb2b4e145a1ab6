// streams/engine.ts — the stream engine: create (incl. forks), append/close with producer
// and Stream-Seq rules, delete, and positioned reads. One JS thread owns it: every check
// and staged state change for a request happens synchronously in arrival order, then the
// change goes to storage; it becomes visible and is acknowledged once durable. A failed
// commit rolls the stream back to its committed state.

import { StreamError, badRequest } from '../protocol/errors.js'
import { type ContentType, type Durability, type ProducerHeaders, isJsonContentType } from '../protocol/headers.js'
import { frameJsonAppend } from '../protocol/json.js'
import { formatOffset } from '../protocol/offset.js'
import { decideProducer } from '../protocol/producer.js'
import type { AppendChange, AppendChunk, Change, LogShape, Storage } from '../storage/types.js'
import { type Done, type MaybePromise, andThen, promised } from '../util/maybe.js'
import { type ForkRequest, type PreparedFork, forkSource, prepareFork } from './fork.js'
import { Controls } from './controls.js'
import { Registry } from './registry.js'
import { storageError } from './storage-error.js'
import { Stream, type StreamConfig } from './stream.js'
import { wakeWaiters } from './waiters.js'
import { PendingCommit, commitPromise } from './pending-commit.js'

export interface EngineOptions {
  readonly storage: Storage
  readonly defaultDurability: Durability
  readonly expirySweepMs: number
  readonly now?: () => number
  /** First id for new streams (recovery continues the sequence). */
  readonly firstStreamId?: number
}

export interface CreateRequest {
  readonly path: string
  readonly contentType: ContentType | undefined
  readonly ttlSeconds: number | undefined
  readonly expiresAtMs: number | undefined
  readonly closed: boolean
  readonly body: Uint8Array
  readonly fork: ForkRequest | undefined
  readonly durability: Durability | undefined
}

export interface AppendRequest {
  readonly path: string
  readonly contentType: ContentType | undefined
  readonly body: Uint8Array
  readonly close: boolean
  readonly producer: ProducerHeaders | undefined
  readonly streamSeq: string | undefined
}

export interface AppendResult {
  readonly stream: Stream
  /** 'appended' wrote bytes; 'closed' only closed; 'duplicate' was a producer retry. */
  readonly outcome: 'appended' | 'closed' | 'duplicate'
  readonly producerEpoch: number | undefined
  readonly producerSeq: number | undefined
}

/** What a read covers: stream bytes [start, end), end at the tail or a message boundary. */
export interface ReadExtent {
  readonly start: number
  readonly end: number
  /** `end` was the tail when the extent was decided. */
  readonly upToDate: boolean
  readonly closedAtEnd: boolean
}

export interface ReadResult extends ReadExtent {
  readonly parts: Uint8Array[]
}

export const DEFAULT_CONTENT_TYPE: ContentType = { value: 'application/octet-stream', essence: 'application/octet-stream' }

/** Told of committed stream changes (subscriptions). Called after the change is visible,
 * and during recovery for each replayed one (`replayed`). Must not throw. */
export interface StreamObserver {
  /** The stream was created or gained bytes. */
  changed(stream: Stream, replayed: boolean): void
  /** The stream was deleted or expired. */
  removed(stream: Stream): void
}

export class Engine {
  readonly registry: Registry
  /** State that belongs to no stream, stored like stream state (subscriptions). */
  readonly controls: Controls
  observer: StreamObserver | undefined
  private nextId: number
  private readonly now: () => number

  constructor(private readonly options: EngineOptions) {
    this.now = options.now ?? Date.now
    this.nextId = options.firstStreamId ?? 1
    this.registry = new Registry(this.now, (stream) => {
      wakeWaiters(stream)
      this.observer?.removed(stream)
    })
    this.controls = new Controls(options.storage, options.defaultDurability, this.now)
    this.registry.startSweeping(options.expirySweepMs)
  }

  get storage(): Storage {
    return this.options.storage
  }

  get nextStreamId(): number {
    return this.nextId
  }

  /** Recovery: ids below `next` were used before and must not be reused. */
  reserveStreamIds(next: number): void {
    this.nextId = Math.max(this.nextId, next)
  }

  /** PUT: resolves to [stream, created]; idempotent when the existing config matches. */
  create(request: CreateRequest): MaybePromise<[Stream, boolean]> {
    const prepared = request.fork === undefined ? undefined : prepareFork(this.registry, request.fork, request.contentType)
    return andThen(prepared, (fork) => this.createPrepared(request, fork))
  }

  private createPrepared(request: CreateRequest, fork: PreparedFork | undefined): MaybePromise<[Stream, boolean]> {
    if (request.durability !== undefined && request.durability !== 'memory' && this.options.defaultDurability === 'memory') {
      throw badRequest(`Stream-Durability: ${request.durability} needs a server started with durable storage (--durability buffered or fsync)`)
    }
    const requestKey = createRequestKey(request)
    const existing = this.registry.find(request.path)
    if (existing?.deletion !== undefined) {
      const again = (): MaybePromise<[Stream, boolean]> => this.create(request)
      return existing.deletion.then(again, again)
    }
    if (existing !== undefined) return this.confirmExisting(existing, request, requestKey)
    if (fork !== undefined && forkSource(this.registry, request.fork!.sourcePath) !== fork.source) {
      throw new StreamError('CONFIG_MISMATCH', 'fork source changed while the fork was being created')
    }
    const chunks: AppendChunk[] = []
    if (fork?.slice !== undefined) chunks.push(fork.slice)
    const contentType = fork?.contentType ?? request.contentType ?? DEFAULT_CONTENT_TYPE
    const json = isJsonContentType(contentType)
    if (request.body.length > 0) chunks.push(json ? frameJsonAppend(request.body, true) : { bytes: request.body, messageEnds: undefined })
    const inherit = fork !== undefined && request.ttlSeconds === undefined && request.expiresAtMs === undefined
    const config: StreamConfig = {
      contentType,
      json,
      ttlSeconds: inherit ? fork.source.config.ttlSeconds : request.ttlSeconds,
      expiresAtMs: inherit ? fork.source.config.expiresAtMs : request.expiresAtMs,
      durability: request.durability ?? this.options.defaultDurability,
      requestKey,
    }
    if (fork !== undefined && fork.source.config.durability === 'memory' && config.durability !== 'memory') {
      throw badRequest('a memory-class stream can only be forked into a memory-class stream (send Stream-Durability: memory)')
    }
    const stream = this.newStream(this.nextId++, request.path, config, fork?.source, fork?.base ?? 0)
    for (const chunk of chunks) if (chunk.bytes.length > 0) stream.appendBytes(chunk.bytes, chunk.messageEnds)
    stream.staged.closed = request.closed
    stream.creating = true
    this.registry.add(stream)
    const change: Change = {
      kind: 'create',
      streamId: stream.id,
      path: stream.path,
      contentType: contentType.value,
      ttlSeconds: config.ttlSeconds,
      expiresAtMs: config.expiresAtMs,
      durability: config.durability,
      requestKey,
      parentId: fork?.source.id,
      base: stream.base,
      closed: request.closed,
      chunks,
    }
    const onCommit = (): void => {
      stream.commitBytes(stream.stagedTail)
      stream.closed = request.closed
      stream.creating = false
    }
    const onFail = (): void => this.registry.discard(stream)
    return this.commit(stream, change, onCommit, onFail, (): [Stream, boolean] => [stream, true])
  }

  private confirmExisting(existing: Stream, request: CreateRequest, requestKey: string): MaybePromise<[Stream, boolean]> {
    if (existing.softDeleted) throw new StreamError('CONFIG_MISMATCH', 'stream was deleted and is still referenced by forks')
    if (existing.config.requestKey !== requestKey || existing.staged.closed !== request.closed) {
      throw new StreamError('CONFIG_MISMATCH', 'stream exists with a different configuration')
    }
    this.touch(existing)
    return promised((done) => this.afterInflight(existing, (): [Stream, boolean] => [existing, false], done))
  }

  /** Builds a stream object with a fresh log; used by creates and by recovery. */
  newStream(id: number, path: string, config: StreamConfig, parent: Stream | undefined, base: number, shape?: LogShape): Stream {
    this.nextId = Math.max(this.nextId, id + 1)
    const log = this.options.storage.createLog(id, config.durability, shape ?? { length: 0, appends: 0, messages: config.json ? 0 : undefined })
    return new Stream(id, path, config, log, parent, base, this.now())
  }

  /** POST: append and/or close, applying producer, closure, content type, then Stream-Seq rules. */
  append(request: AppendRequest): MaybePromise<AppendResult> {
    return promised((done) => this.appendThen(request, done))
  }

  /** append() with a callback (the HTTP append path: no promise per request). Refusals are
   * thrown; `done` gets the outcome, synchronously when nothing waits for the disk. */
  appendThen(request: AppendRequest, done: Done<AppendResult>): void {
    const stream = this.registry.get(request.path)
    this.touch(stream)
    const hasBody = request.body.length > 0
    if (!hasBody && !request.close) throw badRequest('append body is empty (send Stream-Closed: true to close)')
    if (hasBody && request.contentType === undefined) throw badRequest('Content-Type is required when appending data')
    const { producer, streamSeq } = request
    const staged = stream.staged
    if (producer !== undefined) {
      const duplicate = this.checkProducer(stream, producer)
      if (duplicate !== undefined) return this.afterInflight(stream, () => duplicate, done)
    }
    if (staged.closed) {
      if (!hasBody && producer === undefined) return this.afterInflight(stream, () => result(stream, 'closed', undefined), done)
      throw new StreamError('STREAM_CLOSED', 'stream is closed', { nextOffset: formatOffset(stream.stagedTail) })
    }
    // A malformed request (no body, no Content-Type) is 400 whatever the stream's state;
    // conflicts follow PROTOCOL §5.2's precedence: closed, content type, Stream-Seq.
    const contentType = request.contentType
    const chunk = hasBody && contentType !== undefined ? this.frameBody(stream, contentType, request.body) : undefined
    if (streamSeq !== undefined && staged.lastStreamSeq !== undefined && streamSeq <= staged.lastStreamSeq) {
      throw new StreamError('STREAM_SEQ_CONFLICT', `Stream-Seq "${streamSeq}" is not greater than "${staged.lastStreamSeq}"`)
    }
    const change: AppendChange = { kind: 'append', streamId: stream.id, position: stream.stagedTail, chunk, close: request.close, producer, streamSeq }
    if (chunk !== undefined) stream.appendBytes(chunk.bytes, chunk.messageEnds)
    if (streamSeq !== undefined) staged.lastStreamSeq = streamSeq
    if (producer !== undefined) (staged.producers ??= new Map()).set(producer.id, { epoch: producer.epoch, lastSeq: producer.seq })
    if (request.close) staged.closed = true
    const end = stream.stagedTail
    const onCommit = (): void => {
      this.registry.markChanged(stream)
      stream.commitBytes(end)
      if (streamSeq !== undefined) stream.lastStreamSeq = streamSeq
      if (producer !== undefined) (stream.producers ??= new Map()).set(producer.id, { epoch: producer.epoch, lastSeq: producer.seq })
      if (request.close) stream.closed = true
    }
    const outcome = hasBody ? 'appended' : 'closed'
    this.commitThen(stream, change, onCommit, () => stream.rollback(), () => result(stream, outcome, producer), done)
  }

  private frameBody(stream: Stream, contentType: ContentType, body: Uint8Array): AppendChunk {
    if (contentType.essence !== stream.config.contentType.essence) {
      throw new StreamError('CONTENT_TYPE_MISMATCH', `stream content type is ${stream.config.contentType.essence}`)
    }
    return stream.config.json ? frameJsonAppend(body, false) : { bytes: body, messageEnds: undefined }
  }

  /** Returns a duplicate result, throws for stale/gap/bad-epoch, or undefined to proceed. */
  private checkProducer(stream: Stream, producer: ProducerHeaders): AppendResult | undefined {
    const decision = decideProducer(stream.staged.producers?.get(producer.id), producer.epoch, producer.seq)
    switch (decision.kind) {
      case 'accept':
        return undefined
      case 'duplicate':
        return { stream, outcome: 'duplicate', producerEpoch: producer.epoch, producerSeq: decision.lastSeq }
      case 'stale-epoch':
        throw new StreamError('PRODUCER_STALE_EPOCH', 'producer epoch is stale', { currentEpoch: decision.currentEpoch })
      case 'epoch-needs-seq-zero':
        throw new StreamError('PRODUCER_EPOCH_SEQ', 'a new producer epoch must start at Producer-Seq 0')
      case 'gap':
        throw new StreamError('PRODUCER_SEQ_GAP', 'producer sequence gap', { expectedSeq: decision.expectedSeq, receivedSeq: decision.receivedSeq })
    }
  }

  /** Hands a staged change to storage; applies it when durable, rolls back on failure
   * (also how a stream moved from another node is written: streams/transfer.ts). */
  commit<R>(stream: Stream, change: Change, onCommit: () => void, onFail: () => void, value: () => R): MaybePromise<R> {
    return promised((done) => this.commitThen(stream, change, onCommit, onFail, value, done))
  }

  /** commit() with a callback; throws what storage refuses at once (after onFail). */
  private commitThen<R>(stream: Stream, change: Change, onCommit: () => void, onFail: () => void, value: () => R, done: Done<R>): void {
    let pending: PendingCommit | undefined
    const settle = (error: unknown): void => {
      if (stream.lastCommit === pending) stream.lastCommit = undefined
      // Whatever throws here, the caller and what waits on this commit hear of it once.
      let failure: unknown = error === undefined ? undefined : storageError(error)
      let result: R | undefined
      try {
        if (failure !== undefined) onFail()
        else {
          onCommit()
          this.committed(stream, change)
          result = value()
        }
      } catch (thrown) {
        failure ??= thrown
      }
      try {
        done(failure, failure === undefined ? result : undefined)
      } finally {
        pending?.settle(failure)
      }
    }
    let waits: boolean
    try {
      // lastAccessMs was set to now by the request that made this change.
      waits = this.options.storage.commit(change, stream.config.durability, stream.lastAccessMs, settle)
    } catch (error) {
      onFail()
      throw storageError(error)
    }
    if (!waits) return settle(undefined)
    pending = new PendingCommit()
    stream.lastCommit = pending
  }

  private committed(stream: Stream, change: Change): void {
    wakeWaiters(stream)
    if (this.observer !== undefined && (change.kind === 'create' || (change.kind === 'append' && change.chunk !== undefined))) this.observer.changed(stream, false)
  }

  /** Answers that depend on staged state wait until that state is durable. */
  private afterInflight<R>(stream: Stream, value: () => R, done: Done<R>): void {
    const pending = stream.lastCommit
    if (pending === undefined) return done(undefined, value())
    pending.wait((error) => (error === undefined ? done(undefined, value()) : done(error, undefined)))
  }

  /** DELETE: the stream is retired once its WAL record commits (a failed write leaves it
   * as it was); meanwhile requests see it as gone (404) and a PUT of its path waits. */
  delete(path: string): MaybePromise<void> {
    const stream = this.registry.get(path)
    let pending: Promise<unknown> | undefined
    try {
      pending = commitPromise(this.options.storage, { kind: 'delete', streamId: stream.id }, stream.config.durability, this.now())
    } catch (error) {
      throw storageError(error)
    }
    if (pending === undefined) return this.registry.retireIfCurrent(stream)
    const deletion = pending.then(
      () => {
        stream.deletion = undefined
        this.registry.retireIfCurrent(stream)
      },
      (error: unknown) => {
        stream.deletion = undefined
        throw storageError(error)
      },
    )
    stream.deletion = deletion
    return deletion
  }

  /** Metadata lookup (HEAD): no TTL renewal. */
  peek(path: string): Stream {
    return this.registry.get(path)
  }

  /** Lookup for a read: renews a sliding TTL. */
  openForRead(path: string): Stream {
    const stream = this.registry.get(path)
    this.touch(stream)
    return stream
  }

  /** Renews a sliding TTL; checkpoints keep the renewal (only TTL streams need it kept). */
  private touch(stream: Stream): void {
    stream.lastAccessMs = this.now()
    if (stream.config.ttlSeconds !== undefined) this.registry.markChanged(stream)
  }

  /** Validates a client-supplied read position against the stream. */
  checkReadPosition(stream: Stream, position: number): MaybePromise<void> {
    if (position > stream.tail) throw new StreamError('INVALID_OFFSET', 'offset is beyond the end of the stream')
    return andThen(stream.isBoundary(position), (boundary) => {
      if (!boundary) throw new StreamError('INVALID_OFFSET', 'offset is not at a message boundary')
    })
  }

  /** Where a read from `from` of at most `bytesMax` bytes ends: at the tail, or at the last
   * message boundary within the limit (at least one message). */
  readExtent(stream: Stream, from: number, bytesMax: number): MaybePromise<ReadExtent> {
    return andThen(stream.readEnd(from, bytesMax), (end) => {
      // The tail may have moved while an index lookup was reading: judge against it now.
      const upToDate = end === stream.tail
      return { start: from, end, upToDate, closedAtEnd: upToDate && stream.closed }
    })
  }

  /** The bytes of readExtent(stream, from, bytesMax). */
  read(stream: Stream, from: number, bytesMax: number): MaybePromise<ReadResult> {
    return andThen(this.readExtent(stream, from, bytesMax), (extent) => andThen(stream.read(extent.start, extent.end), (parts) => ({ ...extent, parts })))
  }

  async close(): Promise<void> {
    this.registry.stopSweeping()
    await this.options.storage.close()
  }
}

function result(stream: Stream, outcome: AppendResult['outcome'], producer: ProducerHeaders | undefined): AppendResult {
  return { stream, outcome, producerEpoch: producer?.epoch, producerSeq: producer?.seq }
}

function createRequestKey(request: CreateRequest): string {
  const fork = request.fork
  return JSON.stringify([
    request.contentType?.essence ?? (fork === undefined ? DEFAULT_CONTENT_TYPE.essence : null),
    request.ttlSeconds ?? null,
    request.expiresAtMs ?? null,
    fork === undefined ? null : [fork.sourcePath, fork.position ?? null, fork.subOffset],
    request.durability ?? null,
  ])
}
