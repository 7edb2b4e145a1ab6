// cluster/replica-file.ts — what a replicated node's data directory says about itself
// (`replica.json` beside the WAL): which cluster, shard and node id its data belongs to
// (a directory moved to another shard is refused at start, not mixed in), and the epoch
// history of its WAL: each epoch that wrote into it and the LSN where that epoch's
// batches start (Kafka's leader-epoch file). With it a follower and a new leader find
// where their logs part: the follower's last epoch ends, in the leader's history, where
// the next epoch starts; the follower cuts everything after that.

import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export interface Identity {
  readonly cluster: string
  readonly shard: string
  readonly nodeId: string
}

/** [epoch, startLsn], epochs increasing. */
export type EpochEntry = readonly [number, number]

/** Epochs remembered; older ones are folded away (a follower that old needs a snapshot). */
const EPOCHS_MAX = 1000

export class ReplicaFileError extends Error {}

export class ReplicaFile {
  private epochs: EpochEntry[]

  private constructor(
    private readonly path: string,
    readonly identity: Identity,
    epochs: EpochEntry[],
  ) {
    this.epochs = epochs
  }

  /** Opens (or, for a new directory, creates) the file; refuses a directory of another shard or node. */
  static open(dataDir: string, identity: Identity): ReplicaFile {
    const path = join(dataDir, 'replica.json')
    let saved: { cluster: string; shard: string; nodeId: string; epochs: EpochEntry[] } | undefined
    try {
      saved = JSON.parse(readFileSync(path, 'utf8')) as typeof saved
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new ReplicaFileError(`${path} cannot be read: ${(error as Error).message}`)
    }
    if (saved !== undefined) {
      for (const field of ['cluster', 'shard', 'nodeId'] as const) {
        if (saved[field] !== identity[field]) {
          throw new ReplicaFileError(`${dataDir} holds the data of ${field} "${saved[field]}", not "${identity[field]}": start this node with --${field === 'nodeId' ? 'node-id' : field} ${saved[field]}, or give it an empty --data-dir`)
        }
      }
    }
    const file = new ReplicaFile(path, identity, saved?.epochs ?? [])
    if (saved === undefined) file.save()
    return file
  }

  /** Writes the file for a snapshot being received into `dir` (its epochs: the leader's up to the snapshot). */
  static write(dir: string, identity: Identity, epochs: readonly EpochEntry[]): void {
    new ReplicaFile(join(dir, 'replica.json'), identity, epochs.map(([epoch, start]) => [epoch, start] as const)).save()
  }

  /** This node stays out of elections for `ms` (wall clock, kept across its restart). */
  abstain(ms: number): void {
    writeFileSync(join(this.path, '..', 'abstain.json'), JSON.stringify({ untilMs: Date.now() + ms }))
  }

  /** How long this node still stays out of elections (0: it votes). */
  abstainingMs(): number {
    try {
      const { untilMs } = JSON.parse(readFileSync(join(this.path, '..', 'abstain.json'), 'utf8')) as { untilMs: number }
      return Math.max(0, untilMs - Date.now())
    } catch {
      return 0
    }
  }

  /** The epoch of the last batch in this WAL (0: none yet). */
  get lastEpoch(): number {
    return this.epochs[this.epochs.length - 1]?.[0] ?? 0
  }

  get history(): readonly EpochEntry[] {
    return this.epochs
  }

  /** Batches of `epoch` start at `startLsn` in this WAL (recorded once they are written). */
  begin(epoch: number, startLsn: number): void {
    if (epoch <= this.lastEpoch) return
    const next = [...this.epochs.slice(-(EPOCHS_MAX - 1)), [epoch, startLsn] as const]
    this.save(next)
    this.epochs = next
  }

  /** The WAL was cut to `lsn`: epochs that start after it wrote nothing that is left. */
  cut(lsn: number): void {
    const kept = this.epochs.filter(([, start]) => start < lsn)
    if (kept.length === this.epochs.length) return
    this.save(kept)
    this.epochs = kept
  }

  /** Writes `epochs` durably (memory changes only once it is: a failed write changes nothing). */
  private save(epochs: readonly EpochEntry[] = this.epochs): void {
    const temporary = `${this.path}.tmp`
    writeFileSync(temporary, JSON.stringify({ ...this.identity, epochs }))
    const fd = openSync(temporary, 'r')
    try {
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(temporary, this.path)
    const dir = openSync(join(this.path, '..'), 'r')
    try {
      fsyncSync(dir)
    } finally {
      closeSync(dir)
    }
  }
}

/** Where `epoch` ends in `history` (a log ending at `endLsn`): where the next epoch starts. */
function endIn(history: readonly EpochEntry[], epoch: number, endLsn: number): number {
  for (const [each, start] of history) if (each > epoch) return start
  return endLsn
}

/**
 * Where a follower's log parts from its leader's: both hold the batches of their newest
 * common epoch exactly as that epoch's leader wrote them, so they agree up to where that
 * epoch ends in the shorter of the two; everything after that in the follower's log is a
 * tail the leader never had. 0 when they share no epoch.
 */
export function divergence(leader: readonly EpochEntry[], leaderLsn: number, follower: readonly EpochEntry[], followerLsn: number): number {
  const known = new Set(leader.map(([epoch]) => epoch))
  let common: number | undefined
  for (const [epoch] of follower) if (known.has(epoch)) common = epoch
  if (common === undefined) return 0
  return Math.min(endIn(leader, common, leaderLsn), endIn(follower, common, followerLsn))
}
