// storage/registry/registry-lmdb.ts — the registry store on a real disk: an lmdb environment in
// <data-dir>/registry (a copy-on-write B+tree, memory-mapped: lookups are synchronous and
// cost microseconds, a commit writes only the pages it changed). Five databases:
// streams (id → entry, see registry-store.ts), paths (path → id), expiring (the ids of
// streams with a TTL or Expires-At, for the expiry sweep), controls (state that belongs to
// no stream: subscriptions, storage/controls.ts) and meta (the checkpoint's LSN and id
// counter). A checkpoint is one write transaction over all of them, awaited until
// lmdb reports it flushed to disk, before any WAL segment it covers goes. Version 1 (no
// expiring database) is upgraded in place when opened.

import { open, type Database, type RootDatabase } from 'lmdb'
import { type RegistryMeta, type RegistryStore, canExpire, decodeEntry, encodeEntry } from './registry-store.js'
import type { RemovedStream, StreamSnapshot } from '../types.js'

const META_KEY = 'checkpoint'
const FORMAT = 'ringstream-registry'
/** 3: entries may hold a small stream's bytes (inline); 2 is read as it is. */
const VERSION = 3

interface StoredMeta extends RegistryMeta {
  readonly format: string
  readonly version: number
}

export class LmdbRegistry implements RegistryStore {
  private constructor(
    private readonly root: RootDatabase,
    private readonly streams: Database<Buffer, number>,
    private readonly paths: Database<number, string>,
    private readonly expiring: Database<boolean, number>,
    private readonly metaDb: Database<StoredMeta, string>,
    private readonly controlDb: Database<string, string>,
  ) {}

  static async open(dir: string): Promise<LmdbRegistry> {
    // No read-ahead (MDB_NORDAHEAD; lmdb-js reads the option but its types omit it): lookups
    // are random, and read-ahead maps in (and counts as resident) pages around every page a
    // lookup touches.
    const root = open({ path: dir, compression: false, noReadAhead: true } as Parameters<typeof open>[0])
    const streams = root.openDB<Buffer, number>('streams', { encoding: 'binary', keyEncoding: 'uint32' })
    const paths = root.openDB<number, string>('paths', {})
    const expiring = root.openDB<boolean, number>('expiring', { keyEncoding: 'uint32' })
    const meta = root.openDB<StoredMeta, string>('meta', {})
    const controls = root.openDB<string, string>('controls', { encoding: 'string' })
    const store = new LmdbRegistry(root, streams, paths, expiring, meta, controls)
    const saved = meta.get(META_KEY)
    if (saved !== undefined && (saved.format !== FORMAT || saved.version < 1 || saved.version > VERSION)) {
      throw new Error(`${dir} holds a registry of format ${saved.format} version ${saved.version}; this ringstream reads ${FORMAT} versions 1 to ${VERSION}`)
    }
    if (saved?.version === 1) await store.upgradeFromVersion1(saved)
    return store
  }

  /** Version 1 had no expiring database: one pass over the entries builds it. */
  private async upgradeFromVersion1(saved: StoredMeta): Promise<void> {
    await this.root.transaction(() => {
      for (const { key, value } of this.streams.getRange()) {
        if (canExpire(decodeEntry(key, value))) void this.expiring.put(key, true)
      }
      void this.metaDb.put(META_KEY, { ...saved, version: VERSION })
    })
    await this.root.flushed
  }

  get meta(): RegistryMeta | undefined {
    const saved = this.metaDb.get(META_KEY)
    return saved === undefined ? undefined : { lsn: saved.lsn, nextStreamId: saved.nextStreamId, segmentBytes: saved.segmentBytes }
  }

  get(id: number): StreamSnapshot | undefined {
    const entry = this.streams.get(id)
    return entry === undefined ? undefined : decodeEntry(id, entry)
  }

  idOf(path: string): number | undefined {
    return this.paths.get(path)
  }

  expiringAfter(after: number, limit: number): number[] {
    const ids: number[] = []
    for (const id of this.expiring.getKeys({ start: after + 1, limit })) ids.push(id)
    return ids
  }

  storedPaths(): Iterable<string> {
    return this.paths.getKeys()
  }

  controls(): Array<[string, string]> {
    const all: Array<[string, string]> = []
    for (const { key, value } of this.controlDb.getRange()) all.push([key, value])
    return all
  }

  async commit(puts: readonly StreamSnapshot[], removes: readonly RemovedStream[], meta: RegistryMeta, controls?: ReadonlyMap<string, string | undefined>): Promise<void> {
    await this.root.transaction(() => {
      for (const [key, value] of controls ?? []) void (value === undefined ? this.controlDb.remove(key) : this.controlDb.put(key, value))
      for (const { id, path } of removes) {
        void this.streams.remove(id)
        void this.expiring.remove(id)
        if (this.paths.get(path) === id) void this.paths.remove(path)
      }
      for (const snapshot of puts) {
        void this.streams.put(snapshot.id, encodeEntry(snapshot))
        // Unchanged paths are not rewritten: each put copies a B-tree page.
        if (this.paths.get(snapshot.path) !== snapshot.id) void this.paths.put(snapshot.path, snapshot.id)
        if (canExpire(snapshot)) void this.expiring.put(snapshot.id, true)
      }
      void this.metaDb.put(META_KEY, { format: FORMAT, version: VERSION, ...meta })
    })
    await this.root.flushed
  }

  /** lmdb's own hot copy (mdb_env_copy): one read transaction, so one commit's state. */
  backup(dir: string): Promise<void> {
    return this.root.backup(dir, false)
  }

  async close(): Promise<void> {
    await this.root.close()
  }
}
