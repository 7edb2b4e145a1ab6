// streams/recovery.ts — rebuilding engine state at startup and describing it for checkpoints.
// load() takes a checkpoint snapshot, apply() replays one WAL record without re-validating
// it (it was validated when first accepted), snapshot() captures committed state only.

import { parseContentType, isJsonContentType } from '../protocol/headers.js'
import type { EngineSnapshot, StreamDefinition, StreamSnapshot } from '../storage/types.js'
import type { WalRecord } from '../storage/wal-record.js'
import type { RecoveryTarget } from '../storage/durable.js'
import type { Engine } from './engine.js'
import type { Stream, StreamConfig } from './stream.js'

export class RecoveryCorruptionError extends Error {}

function configOf(record: StreamDefinition): StreamConfig {
  const contentType = parseContentType(record.contentType)
  return {
    contentType,
    json: isJsonContentType(contentType),
    ttlSeconds: record.ttlSeconds,
    expiresAtMs: record.expiresAtMs,
    durability: record.durability,
    requestKey: record.requestKey,
  }
}

export function recoveryTarget(engine: Engine): RecoveryTarget {
  const registry = engine.registry
  const parentOf = (parentId: number | undefined, childId: number): Stream | undefined => {
    if (parentId === undefined) return undefined
    const parent = registry.findById(parentId)
    if (parent === undefined) throw new RecoveryCorruptionError(`stream ${childId} forks missing stream ${parentId}`)
    return parent
  }
  return {
    load(state: EngineSnapshot): void {
      const streams = state.streams.slice().sort((a, b) => a.id - b.id)
      for (const saved of streams) {
        const config = configOf(saved)
        if ((saved.messageCount !== undefined) !== config.json) throw new RecoveryCorruptionError(`stream ${saved.id}: message index does not match its content type`)
        const shape = { length: saved.length, appends: saved.appendCount, messages: saved.messageCount }
        const stream = engine.newStream(saved.id, saved.path, config, parentOf(saved.parentId, saved.id), saved.base, shape)
        stream.committedLength = saved.length
        stream.closed = stream.staged.closed = saved.closed
        stream.lastStreamSeq = stream.staged.lastStreamSeq = saved.lastStreamSeq
        if (saved.producers.length > 0) {
          stream.producers = new Map(saved.producers.map(([id, epoch, lastSeq]) => [id, { epoch, lastSeq }]))
          stream.staged.producers = new Map(stream.producers)
        }
        stream.lastAccessMs = saved.lastAccessMs
        registry.add(stream)
        stream.softDeleted = saved.softDeleted
      }
      engine.reserveStreamIds(state.nextStreamId)
    },

    apply({ change, timeMs }: WalRecord): void {
      if (change.kind === 'create') {
        const previous = registry.find(change.path)
        if (previous !== undefined && !previous.softDeleted) registry.retire(previous)
        const stream = engine.newStream(change.streamId, change.path, configOf(change), parentOf(change.parentId, change.streamId), change.base)
        for (const chunk of change.chunks) if (chunk.bytes.length > 0) stream.appendBytes(chunk.bytes, chunk.messageEnds)
        stream.commitBytes(stream.stagedTail)
        stream.closed = stream.staged.closed = change.closed
        stream.lastAccessMs = timeMs
        registry.add(stream)
        return
      }
      const stream = registry.findById(change.streamId)
      if (stream === undefined) return
      if (change.kind === 'delete') {
        if (!stream.softDeleted) registry.retire(stream)
        return
      }
      const tail = stream.stagedTail
      if (change.position !== tail) throw new RecoveryCorruptionError(`stream ${stream.id}: WAL append at ${change.position}, stream ends at ${tail}`)
      if (change.chunk !== undefined) {
        stream.appendBytes(change.chunk.bytes, change.chunk.messageEnds)
        stream.commitBytes(tail + change.chunk.bytes.length)
      }
      if (change.streamSeq !== undefined) stream.lastStreamSeq = stream.staged.lastStreamSeq = change.streamSeq
      const producer = change.producer
      if (producer !== undefined) {
        ;(stream.producers ??= new Map()).set(producer.id, { epoch: producer.epoch, lastSeq: producer.seq })
        ;(stream.staged.producers ??= new Map()).set(producer.id, { epoch: producer.epoch, lastSeq: producer.seq })
      }
      if (change.close) stream.closed = stream.staged.closed = true
      if (timeMs > stream.lastAccessMs) stream.lastAccessMs = timeMs
    },

    snapshot(): EngineSnapshot {
      const streams: StreamSnapshot[] = []
      for (const stream of registry.all()) {
        if (stream.config.durability === 'memory') continue
        streams.push(snapshotOf(stream))
      }
      return { nextStreamId: engine.nextStreamId, streams }
    },
  }
}

function snapshotOf(stream: Stream): StreamSnapshot {
  return {
    id: stream.id,
    path: stream.path,
    contentType: stream.config.contentType.value,
    ttlSeconds: stream.config.ttlSeconds,
    expiresAtMs: stream.config.expiresAtMs,
    durability: stream.config.durability,
    requestKey: stream.config.requestKey,
    parentId: stream.parent?.id,
    base: stream.base,
    length: stream.committedLength,
    closed: stream.closed,
    softDeleted: stream.softDeleted,
    lastAccessMs: stream.lastAccessMs,
    lastStreamSeq: stream.lastStreamSeq,
    producers: stream.producers === undefined ? [] : [...stream.producers].map(([id, state]) => [id, state.epoch, state.lastSeq] as const),
    appendCount: stream.log.appends.countAtMost(stream.committedLength),
    messageCount: stream.log.messages?.countAtMost(stream.committedLength),
  }
}
