// storage/snapshot-install.ts — putting a replica's received snapshot in place at startup.
// A follower too far behind its leader's WAL (or a new, empty node) receives a copy of the
// leader's registry store and stream files into <data-dir>/snapshot.incoming (cluster/),
// renames it to snapshot.ready once every byte is synced, and restarts. Before anything
// else opens the data directory, this moves the copy in: the old WAL, stream files and
// registry go, the copy's entries replace them. A crash at any point leaves snapshot.ready
// with what is still to move (installed at the next start), or the new directory: each
// step is a removal of what is being replaced, then a rename.

import { existsSync, fsyncSync, openSync, closeSync, readdirSync, renameSync, rmSync } from 'node:fs'
import { join } from 'node:path'

export const SNAPSHOT_INCOMING = 'snapshot.incoming'
export const SNAPSHOT_READY = 'snapshot.ready'

/** Installs a complete snapshot if one waits; true when it did. */
export function installSnapshot(dataDir: string): boolean {
  const ready = join(dataDir, SNAPSHOT_READY)
  rmSync(join(dataDir, SNAPSHOT_INCOMING), { recursive: true, force: true })
  if (!existsSync(ready)) return false
  // The old WAL goes (the snapshot's checkpoint LSN starts a new one); then each entry of the
  // copy replaces its namesake: run again after a crash, what was moved in already stays.
  rmSync(join(dataDir, 'wal'), { recursive: true, force: true })
  syncDir(dataDir)
  for (const name of readdirSync(ready)) {
    rmSync(join(dataDir, name), { recursive: true, force: true })
    renameSync(join(ready, name), join(dataDir, name))
    syncDir(dataDir)
  }
  rmSync(ready, { recursive: true, force: true })
  syncDir(dataDir)
  return true
}

function syncDir(dir: string): void {
  const fd = openSync(dir, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}
