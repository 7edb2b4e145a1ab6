// streams/recovery.ts — the engine side of durable storage: streams built from the
// registry store on first access (attach), WAL records replayed without re-validation
// (apply: they were validated when first accepted), and a checkpoint's changes taken as
// committed state (snapshot), then idle streams let go of (evict).

import { StreamError } from '../protocol/errors.js'
import { parseContentType, isJsonContentType } from '../protocol/headers.js'
import { RegistryCorruptionError, type RegistryStore } from '../storage/registry/registry-store.js'
import type { EngineSnapshot, StreamDefinition, StreamSnapshot } from '../storage/types.js'
import type { WalRecord } from '../storage/wal/wal-record.js'
import type { DurableStorage, RecoveryReport, RecoveryTarget } from '../storage/durable.js'
import type { Engine } from './engine.js'
import type { Stream, StreamConfig } from './stream.js'
import { log } from '../util/log.js'

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

export function recoveryTarget(engine: Engine, residentStreamsMax: number): RecoveryTarget {
  const registry = engine.registry
  const parentOf = (parentId: number | undefined, childId: number): Stream | undefined => {
    if (parentId === undefined) return undefined
    const parent = registry.findById(parentId)
    if (parent === undefined) throw new RecoveryCorruptionError(`stream ${childId} forks missing stream ${parentId}`)
    return parent
  }

  /** A stored stream as an engine stream (not registered yet). */
  const build = (saved: StreamSnapshot): Stream => {
    const config = configOf(saved)
    if ((saved.messageCount !== undefined) !== config.json) throw new RegistryCorruptionError(`registry entry of stream ${saved.id}: message index does not match its content type`)
    const shape = { length: saved.length, appends: saved.appendCount, appendTail: saved.appendTail, messages: saved.messageCount, messageTail: saved.messageTail, inline: saved.inline }
    const stream = engine.newStream(saved.id, saved.path, config, parentOf(saved.parentId, saved.id), saved.base, shape)
    stream.committedLength = saved.length
    stream.closed = stream.staged.closed = saved.closed
    stream.lastStreamSeq = stream.staged.lastStreamSeq = saved.lastStreamSeq
    if (saved.producers.length > 0) {
      stream.producers = new Map(saved.producers.map(([id, epoch, lastSeq]) => [id, { epoch, lastSeq }]))
      stream.staged.producers = new Map(stream.producers)
    }
    stream.lastAccessMs = saved.lastAccessMs
    stream.softDeleted = saved.softDeleted
    stream.forkRefs = stream.durableForkRefs = saved.forkRefs
    return stream
  }

  return {
    attach(store: RegistryStore, salvage: boolean): void {
      const meta = store.meta
      if (meta !== undefined) engine.reserveStreamIds(meta.nextStreamId)
      for (const [key, value] of store.controls()) engine.controls.load(key, value)
      const read = (id: number): StreamSnapshot | undefined => {
        try {
          return store.get(id)
        } catch (error) {
          if (!(error instanceof RegistryCorruptionError)) throw error
          if (salvage) {
            log.warn({ streamId: id }, `ringstream: ${error.message}; --salvage: treating stream ${id} as absent`)
            return undefined
          }
          log.error({ streamId: id }, `ringstream: ${error.message}; start with --salvage to drop it`)
          throw new StreamError('IO_ERROR', `${error.message} (the server must be restarted with --salvage to drop it)`)
        }
      }
      const loadId = (id: number): Stream | undefined => {
        if (registry.isGone(id)) return undefined
        const saved = read(id)
        return saved === undefined ? undefined : build(saved)
      }
      registry.residentMax = residentStreamsMax
      registry.backing = {
        loadId,
        loadPath: (path) => {
          const id = store.idOf(path)
          return id === undefined ? undefined : loadId(id)
        },
        stored: (id) => store.get(id),
        expiringAfter: (after, limit) => store.expiringAfter(after, limit),
        paths: () => store.storedPaths(),
      }
    },

    apply({ change, timeMs }: WalRecord): void {
      if (change.kind === 'control') return engine.controls.replay(change.key, change.value)
      if (change.kind === 'create') {
        if (registry.findById(change.streamId) !== undefined) return // already in the store
        const previous = registry.find(change.path)
        if (previous !== undefined && !previous.softDeleted) registry.retire(previous)
        const stream = engine.newStream(change.streamId, change.path, configOf(change), parentOf(change.parentId, change.streamId), change.base)
        for (const chunk of change.chunks) if (chunk.bytes.length > 0) stream.appendBytes(chunk.bytes, chunk.messageEnds, true)
        stream.commitBytes(stream.stagedTail)
        stream.closed = stream.staged.closed = change.closed
        stream.lastAccessMs = timeMs
        registry.add(stream)
        engine.observer?.changed(stream, true)
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
        stream.appendBytes(change.chunk.bytes, change.chunk.messageEnds, true)
        stream.commitBytes(tail + change.chunk.bytes.length)
        engine.observer?.changed(stream, true)
      }
      if (change.streamSeq !== undefined) stream.lastStreamSeq = stream.staged.lastStreamSeq = change.streamSeq
      const producer = change.producer
      if (producer !== undefined) {
        ;(stream.producers ??= new Map()).set(producer.id, { epoch: producer.epoch, lastSeq: producer.seq })
        ;(stream.staged.producers ??= new Map()).set(producer.id, { epoch: producer.epoch, lastSeq: producer.seq })
      }
      if (change.close) stream.closed = stream.staged.closed = true
      if (timeMs > stream.lastAccessMs) stream.lastAccessMs = timeMs
      registry.markChanged(stream)
    },

    snapshot(): EngineSnapshot {
      const changes = registry.takeChanges()
      const controls = engine.controls.take()
      return {
        controls,
        nextStreamId: engine.nextStreamId,
        streams: changes.streams.map(snapshotOf),
        logs: changes.streams.map((stream) => stream.log),
        removed: changes.removed,
        restore: () => {
          registry.restoreChanges(changes)
          engine.controls.untake(controls)
        },
        stored: () => registry.committedChanges(changes),
      }
    },

    changedCount: () => registry.changedCount,

    evict: () => registry.evict(residentStreamsMax),
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
    forkRefs: stream.durableForkRefs,
    appendCount: stream.log.appends.countAtMost(stream.committedLength),
    appendTail: stream.log.appends.tailAtMost(stream.committedLength),
    messageCount: stream.log.messages?.countAtMost(stream.committedLength),
    messageTail: stream.log.messages?.tailAtMost(stream.committedLength),
    inline: stream.log.inlineAtMost?.(stream.committedLength),
  }
}

/** Recovers `engine` from durable storage: the expiry sweep waits until every stream is
 * back (an expired stream must not be removed half-replayed), then runs once. `replica`:
 * the WAL after the checkpoint waits to be applied until the shard says how much stays. */
export async function recoverEngine(engine: Engine, storage: DurableStorage, residentStreamsMax: number, replica = false): Promise<RecoveryReport> {
  engine.registry.expiryEnabled = false
  const report = await storage.recover(recoveryTarget(engine, residentStreamsMax), replica)
  // A replica expires nothing until it leads (its shard's leader decides, and it may be behind).
  if (replica) return report
  engine.registry.expiryEnabled = true
  engine.registry.sweep()
  return report
}
