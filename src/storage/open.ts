// storage/open.ts — the storage a server runs on: memory (no disk, no ring), or durable on
// a data directory with the registry store that fits the disk: lmdb on a real one, the
// Io-backed store through the fault-injecting simulator (lmdb cannot run on it).

import { statfs } from 'node:fs/promises'
import type { Io } from '../io/types.js'
import { DurableStorage, type DurableOptions } from './durable.js'
import { MemoryStorage } from './memory.js'
import { LmdbRegistry } from './registry/registry-lmdb.js'
import { IoRegistry } from './registry/registry-store.js'
import type { Storage } from './types.js'

export interface OpenedStorage {
  readonly storage: Storage
  /** The durable engine; undefined in memory mode. */
  readonly durable: DurableStorage | undefined
}

/** Durable options less what this step decides itself. */
export type StorageSettings = Omit<DurableOptions, 'io' | 'openRegistry' | 'freeBytes' | 'diskBytes'>

/** Memory storage without `io`; durable storage on it otherwise. `simulated`: `io` is the
 * simulator, which is its own world (its own registry store; it fails writes with ENOSPC
 * itself, so free space is not asked of the real disk). */
export function openStorage(io: Io | undefined, settings: StorageSettings, simulated: boolean): OpenedStorage {
  if (io === undefined) return { storage: new MemoryStorage(), durable: undefined }
  const durable = new DurableStorage({
    ...settings,
    io,
    freeBytes: simulated ? undefined : async () => freeBytesOf(settings.dataDir),
    diskBytes: simulated ? undefined : async () => diskBytesOf(settings.dataDir),
    openRegistry: async (dir) => {
      if (!simulated) return LmdbRegistry.open(dir)
      await io.mkdirp(dir)
      return IoRegistry.open(io, dir)
    },
  })
  return { storage: durable, durable }
}

/** Bytes an unprivileged writer may still take on the file system of `dir`. */
async function freeBytesOf(dir: string): Promise<number> {
  const stats = await statfs(dir)
  return stats.bavail * stats.bsize
}

/** The size of the file system holding `dir` (its data blocks). */
async function diskBytesOf(dir: string): Promise<number> {
  const stats = await statfs(dir)
  return stats.blocks * stats.bsize
}
