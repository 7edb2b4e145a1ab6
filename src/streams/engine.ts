// streams/engine.ts — the stream engine: create (incl. forks), append/close with producer
// and Stream-Seq rules, delete, and positioned reads. One JS thread owns it: every check
// and state change for a request happens synchronously, so per-stream and per-producer
// ordering is the event loop's arrival order. Waiters are woken after each change.

import { StreamError, badRequest } from '../protocol/errors.js'
import { type ContentType, type Durability, type ProducerHeaders, isJsonContentType } from '../protocol/headers.js'
import { frameJsonAppend } from '../protocol/json.js'
import { formatOffset } from '../protocol/offset.js'
import { decideProducer } from '../protocol/producer.js'
import type { Storage } from '../storage/types.js'
import { createFork, type ForkRequest } from './fork.js'
import { Registry } from './registry.js'
import { Stream, type StreamConfig } from './stream.js'
import { wakeWaiters } from './waiters.js'

export interface EngineOptions {
  readonly storage: Storage
  readonly defaultDurability: Durability
  readonly readBytesMax: number
  readonly expirySweepMs: number
  readonly now?: () => number
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

export interface ReadResult {
  readonly parts: Uint8Array[]
  readonly start: number
  readonly end: number
  readonly upToDate: boolean
  readonly closedAtEnd: boolean
}

const DEFAULT_CONTENT_TYPE: ContentType = { value: 'application/octet-stream', essence: 'application/octet-stream' }

export class Engine {
  readonly registry: Registry
  private nextId = 1
  private readonly now: () => number

  constructor(private readonly options: EngineOptions) {
    this.now = options.now ?? Date.now
    this.registry = new Registry(this.now, (stream) => wakeWaiters(stream))
    this.registry.startSweeping(options.expirySweepMs)
  }

  get storageKind(): string {
    return this.options.storage.kind
  }

  /** PUT: returns [stream, created]; idempotent when the existing config matches. */
  create(request: CreateRequest): [Stream, boolean] {
    const requestKey = createRequestKey(request)
    const existing = this.registry.find(request.path)
    if (existing !== undefined) {
      if (existing.softDeleted) throw new StreamError('CONFIG_MISMATCH', 'stream was deleted and is still referenced by forks')
      if (existing.config.requestKey !== requestKey || existing.closed !== request.closed) {
        throw new StreamError('CONFIG_MISMATCH', 'stream exists with a different configuration')
      }
      existing.lastAccessMs = this.now()
      return [existing, false]
    }
    const stream =
      request.fork === undefined ? this.createPlain(request, requestKey) : createFork(this, request, request.fork, requestKey)
    if (request.body.length > 0) this.appendInitialBody(stream, request.body)
    if (request.closed) stream.closed = true
    this.registry.add(stream)
    return [stream, true]
  }

  /** Builds a stream object; used by plain creates and forks. */
  newStream(path: string, config: StreamConfig, parent: Stream | undefined, base: number): Stream {
    return new Stream(this.nextId++, path, config, this.options.storage.createLog(), parent, base, this.now())
  }

  configFor(request: CreateRequest, contentType: ContentType, requestKey: string, ttl: number | undefined, expiresAt: number | undefined): StreamConfig {
    return {
      contentType,
      json: isJsonContentType(contentType),
      ttlSeconds: ttl,
      expiresAtMs: expiresAt,
      durability: request.durability ?? this.options.defaultDurability,
      requestKey,
    }
  }

  private createPlain(request: CreateRequest, requestKey: string): Stream {
    const contentType = request.contentType ?? DEFAULT_CONTENT_TYPE
    const config = this.configFor(request, contentType, requestKey, request.ttlSeconds, request.expiresAtMs)
    return this.newStream(request.path, config, undefined, 0)
  }

  private appendInitialBody(stream: Stream, body: Uint8Array): void {
    if (stream.config.json) {
        const frames = frameJsonAppend(body, true)
      if (frames.bytes.length > 0) stream.appendBytes(frames.bytes, frames.messageEnds)
    } else {
      stream.appendBytes(body)
    }
  }

  /** POST: append and/or close, applying producer then closure then Stream-Seq rules. */
  append(request: AppendRequest): AppendResult {
    const stream = this.registry.get(request.path)
    stream.lastAccessMs = this.now()
    const hasBody = request.body.length > 0
    if (!hasBody && !request.close) throw badRequest('append body is empty (send Stream-Closed: true to close)')
    const frames = hasBody ? this.frameBody(stream, request) : undefined
    const producer = request.producer
    if (producer !== undefined) {
      const duplicate = this.checkProducer(stream, producer)
      if (duplicate !== undefined) return duplicate
    }
    if (stream.closed) {
      if (!hasBody && producer === undefined) return { stream, outcome: 'closed', producerEpoch: undefined, producerSeq: undefined }
      throw new StreamError('STREAM_CLOSED', 'stream is closed', { nextOffset: formatOffset(stream.tail) })
    }
    if (request.streamSeq !== undefined) {
      if (stream.lastStreamSeq !== undefined && request.streamSeq <= stream.lastStreamSeq) {
        throw new StreamError('STREAM_SEQ_CONFLICT', `Stream-Seq "${request.streamSeq}" is not greater than "${stream.lastStreamSeq}"`)
      }
      stream.lastStreamSeq = request.streamSeq
    }
    if (frames !== undefined) stream.appendBytes(frames.bytes, frames.messageEnds)
    if (producer !== undefined) {
      stream.producers ??= new Map()
      stream.producers.set(producer.id, { epoch: producer.epoch, lastSeq: producer.seq })
    }
    if (request.close) stream.closed = true
    wakeWaiters(stream)
    return {
      stream,
      outcome: hasBody ? 'appended' : 'closed',
      producerEpoch: producer?.epoch,
      producerSeq: producer?.seq,
    }
  }

  private frameBody(stream: Stream, request: AppendRequest): { bytes: Uint8Array; messageEnds?: number[] } {
    if (request.contentType === undefined) throw badRequest('Content-Type is required when appending data')
    if (request.contentType.essence !== stream.config.contentType.essence) {
      throw new StreamError('CONTENT_TYPE_MISMATCH', `stream content type is ${stream.config.contentType.essence}`)
    }
    return stream.config.json ? frameJsonAppend(request.body, false) : { bytes: request.body }
  }

  /** Returns a duplicate result, throws for stale/gap/bad-epoch, or undefined to proceed. */
  private checkProducer(stream: Stream, producer: ProducerHeaders): AppendResult | undefined {
    const decision = decideProducer(stream.producers?.get(producer.id), producer.epoch, producer.seq)
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
        throw new StreamError('PRODUCER_SEQ_GAP', 'producer sequence gap', {
          expectedSeq: decision.expectedSeq,
          receivedSeq: decision.receivedSeq,
        })
    }
  }

  delete(path: string): void {
    this.registry.delete(path)
  }

  /** Metadata lookup (HEAD): no TTL renewal. */
  peek(path: string): Stream {
    return this.registry.get(path)
  }

  /** Lookup for a read: renews a sliding TTL. */
  openForRead(path: string): Stream {
    const stream = this.registry.get(path)
    stream.lastAccessMs = this.now()
    return stream
  }

  /** Validates a client-supplied read position against the stream. */
  checkReadPosition(stream: Stream, position: number): void {
    if (position > stream.tail) throw new StreamError('INVALID_OFFSET', 'offset is beyond the end of the stream')
    if (!stream.isBoundary(position)) throw new StreamError('INVALID_OFFSET', 'offset is not at a message boundary')
  }

  read(stream: Stream, from: number): ReadResult {
    const end = stream.readEnd(from, this.options.readBytesMax)
    const upToDate = end === stream.tail
    return { parts: stream.read(from, end), start: from, end, upToDate, closedAtEnd: upToDate && stream.closed }
  }

  async close(): Promise<void> {
    this.registry.stopSweeping()
    await this.options.storage.close()
  }
}

function createRequestKey(request: CreateRequest): string {
  const fork = request.fork
  return JSON.stringify([
    request.contentType?.essence ?? (fork === undefined ? DEFAULT_CONTENT_TYPE.essence : null),
    request.ttlSeconds ?? null,
    request.expiresAtMs ?? null,
    fork === undefined ? null : [fork.sourcePath, fork.position ?? null, fork.subOffset],
  ])
}
