// storage/registry/registry-store.ts — where checkpoints keep stream metadata (storage/types.ts'
// StreamSnapshot: path, content type, tail, index counts, TTL, closed / soft-deleted / fork
// state, producers, Stream-Seq) so that an idle stream need not be in memory: the engine
// looks streams up here by path or id on first access, synchronously. A checkpoint commits
// the streams that changed since the last one, the ones removed, and the WAL position the
// whole store now reflects, in one atomic, durable step. Implementations:
// registry-lmdb.ts (real disks) and, for the fault-injecting simulator, which lmdb cannot
// run on, IoRegistry below (the whole registry in one file, through the Io seam).
// Each entry is stored as u32 crc32(json) ‖ json (an array, see FIELDS): a damaged entry is
// detected, not trusted.

import { crc32 } from 'node:zlib'
import type { Io } from '../../io/types.js'
import { parseContentType } from '../../protocol/headers.js'
import type { RemovedStream, StreamSnapshot } from '../types.js'

/** What the store reflects as a whole: the checkpoint's WAL position and id counter. */
export interface RegistryMeta {
  readonly lsn: number
  readonly nextStreamId: number
  /** The data directory's segment size (fixed when it was created). */
  readonly segmentBytes: number
}

export interface RegistryStore {
  /** The last committed checkpoint; undefined for a new data directory. */
  readonly meta: RegistryMeta | undefined
  /** Copies the store, consistent as of its last commit, into the existing directory `dir`
   * (a new replica's snapshot; undefined: this store cannot). */
  backup?(dir: string): Promise<void>
  /** The stored stream, or undefined; throws RegistryCorruptionError for a damaged entry. */
  get(id: number): StreamSnapshot | undefined
  /** The id stored for a path (live or soft-deleted stream), or undefined. */
  idOf(path: string): number | undefined
  /** Up to `limit` ids greater than `after`, in order, of the stored streams that can
   * expire (a TTL or an Expires-At): the expiry sweep walks these, never the idle rest. */
  expiringAfter(after: number, limit: number): number[]
  /** Every stored path (live or soft-deleted streams), in order: subscription backfill. */
  storedPaths(): Iterable<string>
  /** Every stored control key and value, in key order (subscriptions: few, loaded whole
   * at startup). */
  controls(): Array<[string, string]>
  /** Atomically and durably: removes, then stores, then sets or removes (undefined) the
   * control keys, then records `meta`. */
  commit(puts: readonly StreamSnapshot[], removes: readonly RemovedStream[], meta: RegistryMeta, controls?: ReadonlyMap<string, string | undefined>): Promise<void>
  close(): Promise<void>
}

export class RegistryCorruptionError extends Error {}

/** Whether a stream can expire, so the expiry sweep must visit it. */
export function canExpire(snapshot: StreamSnapshot): boolean {
  return snapshot.ttlSeconds !== undefined || snapshot.expiresAtMs !== undefined
}

/** Entry fields in stored order: an entry is the JSON array of their values, the ones
 * most streams set first. A value that says nothing is null (undefined, its default below,
 * an empty list, the create request key a plain create gives, the last access of a stream
 * without a TTL: only a sliding TTL reads it), and trailing nulls are left out: an empty
 * idle stream's entry is ["path","type","fsync"] (1M idle streams: 110 MB of lmdb, from
 * 367 MB with keyed objects). The id is the entry's key. Index tails are stored as their
 * first position then the gaps between positions (a few digits each); inline bytes (a
 * small stream's, see file-log.ts) as base64. */
const FIELDS = [
  'path', 'contentType', 'durability', 'length', 'appendCount', 'appendTail', 'messageCount', 'messageTail',
  'ttlSeconds', 'expiresAtMs', 'lastAccessMs', 'requestKey', 'parentId', 'base', 'closed', 'softDeleted', 'lastStreamSeq', 'producers', 'forkRefs',
  'inline',
] as const satisfies ReadonlyArray<keyof StreamSnapshot>
type Field = (typeof FIELDS)[number]
const DEFAULTS: Partial<Record<Field, unknown>> = { length: 0, appendCount: 0, base: 0, closed: false, softDeleted: false, forkRefs: 0, lastAccessMs: 0 }
const LIST_FIELDS: ReadonlySet<Field> = new Set(['appendTail', 'messageTail', 'producers'])
const TAIL_FIELDS: ReadonlySet<string> = new Set(['appendTail', 'messageTail'])
/** Entries of registry version 1: the id first, then every field but the index tails (their
 * index files hold every entry), all stored. */
const FIELDS_V1 = [
  'id', 'path', 'contentType', 'ttlSeconds', 'expiresAtMs', 'durability', 'requestKey', 'parentId', 'base',
  'length', 'closed', 'softDeleted', 'lastAccessMs', 'lastStreamSeq', 'producers', 'forkRefs', 'appendCount', 'messageCount',
] as const satisfies ReadonlyArray<keyof StreamSnapshot>

export function encodeEntry(snapshot: StreamSnapshot): Buffer {
  const values = FIELDS.map((field) => {
    const value = snapshot[field]
    if (value === undefined || value === DEFAULTS[field] || (LIST_FIELDS.has(field) && (value as readonly unknown[]).length === 0)) return null
    if (field === 'requestKey' && value === plainRequestKey(snapshot)) return null
    if (field === 'lastAccessMs' && snapshot.ttlSeconds === undefined) return null
    if (field === 'inline') return base64(value as Uint8Array)
    return TAIL_FIELDS.has(field) ? gaps(value as readonly number[]) : value
  })
  while (values.length > 0 && values[values.length - 1] === null) values.pop()
  const json = Buffer.from(JSON.stringify(values))
  const entry = Buffer.allocUnsafe(4 + json.length)
  entry.writeUInt32LE(crc32(json), 0)
  json.copy(entry, 4)
  return entry
}

export function decodeEntry(id: number, entry: Uint8Array): StreamSnapshot {
  const bytes = Buffer.from(entry.buffer, entry.byteOffset, entry.byteLength)
  if (bytes.length < 4 || bytes.readUInt32LE(0) !== crc32(bytes.subarray(4))) throw new RegistryCorruptionError(`registry entry of stream ${id} fails its checksum`)
  let values: unknown[]
  try {
    values = JSON.parse(bytes.toString('utf8', 4)) as unknown[]
  } catch {
    throw new RegistryCorruptionError(`registry entry of stream ${id} is not valid JSON`)
  }
  const v1 = Array.isArray(values) && values.length === FIELDS_V1.length && typeof values[0] === 'number'
  if (!Array.isArray(values) || (values.length > FIELDS.length && !v1)) {
    throw new RegistryCorruptionError(`registry entry of stream ${id} has ${Array.isArray(values) ? values.length : 'no'} fields, at most ${FIELDS.length}`)
  }
  const record: Record<string, unknown> = { id }
  ;(v1 ? FIELDS_V1 : FIELDS).forEach((field, i) => {
    const value = values[i] ?? undefined
    if (field === 'id' && value !== id) throw new RegistryCorruptionError(`registry entry of stream ${id} does not describe that stream`)
    if (!TAIL_FIELDS.has(field) || value === undefined) return (record[field] = value ?? DEFAULTS[field as Field])
    const tail = Array.isArray(value) ? positions(value) : undefined
    if (tail === undefined) throw new RegistryCorruptionError(`registry entry of stream ${id} has a damaged ${field}`)
    record[field] = tail
  })
  record.appendTail ??= []
  record.producers ??= []
  if (record.messageCount !== undefined) record.messageTail ??= []
  if (typeof record.path !== 'string' || typeof record.contentType !== 'string' || typeof record.durability !== 'string' || typeof record.length !== 'number' || !Array.isArray(record.producers)) {
    throw new RegistryCorruptionError(`registry entry of stream ${id} does not describe a stream`)
  }
  if (record.inline !== undefined) {
    const inline = typeof record.inline === 'string' ? Buffer.from(record.inline, 'base64') : undefined
    if (inline === undefined || inline.length !== record.length) throw new RegistryCorruptionError(`registry entry of stream ${id} has damaged inline bytes`)
    record.inline = inline
  }
  record.requestKey ??= plainRequestKey(record as unknown as StreamSnapshot)
  return record as unknown as StreamSnapshot
}

function base64(bytes: Uint8Array): string | null {
  return bytes.length === 0 ? null : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64')
}

/** The create request key (streams/engine.ts) of a stream created with just its content
 * type and expiry, no fork, no durability; undefined for a fork. */
function plainRequestKey(snapshot: StreamSnapshot): string | undefined {
  if (snapshot.parentId !== undefined) return undefined
  let essence: string
  try {
    essence = parseContentType(snapshot.contentType).essence
  } catch {
    return undefined
  }
  return JSON.stringify([essence, snapshot.ttlSeconds ?? null, snapshot.expiresAtMs ?? null, null, null])
}

/** [a, b, c] → [a, b - a, c - b]. */
function gaps(sorted: readonly number[]): number[] {
  return sorted.map((value, i) => (i === 0 ? value : value - sorted[i - 1]!))
}

/** The inverse of gaps(); undefined when an element is not a number. */
function positions(stored: readonly unknown[]): number[] | undefined {
  const out: number[] = []
  let at = 0
  for (const value of stored) {
    if (typeof value !== 'number') return undefined
    at += value
    out.push(at)
  }
  return out
}

const IO_FORMAT = 'ringstream-registry'
const IO_VERSION = 1

/** The whole registry in memory and in one file rewritten at each commit (temp file, sync,
 * rename, directory sync) — for the simulator, and small by design: tests only. */
export class IoRegistry implements RegistryStore {
  private constructor(
    private readonly io: Io,
    private readonly path: string,
    private readonly dir: string,
    private readonly entries: Map<number, Buffer>,
    private readonly paths: Map<string, number>,
    private readonly controlValues: Map<string, string>,
    public meta: RegistryMeta | undefined,
  ) {
    for (const [id, entry] of entries) {
      try {
        if (canExpire(decodeEntry(id, entry))) this.expiring.add(id)
      } catch {
        // A damaged entry is reported when its stream is used.
      }
    }
  }

  /** Ids of the streams that can expire (lmdb stores this list; here it is rebuilt on open). */
  private readonly expiring = new Set<number>()

  static async open(io: Io, dir: string): Promise<IoRegistry> {
    const path = `${dir}/registry.json`
    const entries = new Map<number, Buffer>()
    const paths = new Map<string, number>()
    const controls = new Map<string, string>()
    let meta: RegistryMeta | undefined
    let file
    try {
      file = await io.open(path, false)
    } catch (error) {
      if ((error as { code?: string }).code !== 'ENOENT') throw error
    }
    if (file !== undefined) {
      const buffer = Buffer.allocUnsafe(await io.size(file))
      await io.read(file, buffer, 0)
      await io.close(file)
      const saved = JSON.parse(buffer.toString('utf8')) as {
        format: string
        version: number
        meta: RegistryMeta
        entries: Array<[number, string]>
        paths: Array<[string, number]>
        controls?: Array<[string, string]>
      }
      if (saved.format !== IO_FORMAT || saved.version !== IO_VERSION) throw new RegistryCorruptionError(`${path} is not a version ${IO_VERSION} registry`)
      meta = saved.meta
      for (const [id, base64] of saved.entries) entries.set(id, Buffer.from(base64, 'base64'))
      for (const [streamPath, id] of saved.paths) paths.set(streamPath, id)
      for (const [key, value] of saved.controls ?? []) controls.set(key, value)
    }
    return new IoRegistry(io, path, dir, entries, paths, controls, meta)
  }

  get(id: number): StreamSnapshot | undefined {
    const entry = this.entries.get(id)
    return entry === undefined ? undefined : decodeEntry(id, entry)
  }

  idOf(path: string): number | undefined {
    return this.paths.get(path)
  }

  expiringAfter(after: number, limit: number): number[] {
    return [...this.expiring].filter((id) => id > after).sort((a, b) => a - b).slice(0, limit)
  }

  storedPaths(): Iterable<string> {
    return [...this.paths.keys()].sort()
  }

  controls(): Array<[string, string]> {
    // In key order, as lmdb gives them (a subscription before its links).
    return [...this.controlValues].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  }

  async commit(puts: readonly StreamSnapshot[], removes: readonly RemovedStream[], meta: RegistryMeta, controlChanges?: ReadonlyMap<string, string | undefined>): Promise<void> {
    const entries = new Map(this.entries)
    const paths = new Map(this.paths)
    const controls = new Map(this.controlValues)
    for (const [key, value] of controlChanges ?? []) {
      if (value === undefined) controls.delete(key)
      else controls.set(key, value)
    }
    for (const { id, path } of removes) {
      entries.delete(id)
      if (paths.get(path) === id) paths.delete(path)
    }
    for (const snapshot of puts) {
      entries.set(snapshot.id, encodeEntry(snapshot))
      paths.set(snapshot.path, snapshot.id)
    }
    const text = JSON.stringify({ format: IO_FORMAT, version: IO_VERSION, meta, entries: [...entries].map(([id, entry]) => [id, entry.toString('base64')]), paths: [...paths], controls: [...controls] })
    const tmp = `${this.path}.tmp`
    const file = await this.io.open(tmp, true)
    try {
      await this.io.truncate(file, 0)
      await this.io.writev(file, [Buffer.from(text)], 0, true)
    } finally {
      await this.io.close(file)
    }
    await this.io.rename(tmp, this.path)
    await this.io.syncDir(this.dir)
    // Visible only once durable, as lmdb's commit is.
    this.entries.clear()
    for (const [id, entry] of entries) this.entries.set(id, entry)
    this.paths.clear()
    for (const [path, id] of paths) this.paths.set(path, id)
    this.controlValues.clear()
    for (const [key, value] of controls) this.controlValues.set(key, value)
    for (const { id } of removes) this.expiring.delete(id)
    for (const snapshot of puts) if (canExpire(snapshot)) this.expiring.add(snapshot.id)
    this.meta = meta
  }

  async close(): Promise<void> {}
}
