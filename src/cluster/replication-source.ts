// cluster/replication-source.ts — a shard leader's side of replication. Every WAL batch the
// leader writes is kept in memory for a while (recent, bounded) and sent to each follower
// connected to it, in LSN order, without waiting for earlier answers (the socket keeps
// the order; its buffer bounds what is in flight). A follower behind what memory keeps
// is sent batches read back from the WAL files. Followers acknowledge the LSN they have
// written (and synced, when the batch asked for it); an append is acknowledged to its
// client once a majority of the shard's replicas, this leader included, has its batch
// (the AckGate durable storage asks). The leader acknowledges nothing once its own lease
// deadline has passed, and steps down when no majority answers within one lease TTL.

import { type FileHandle, mkdtemp, open, rm } from 'node:fs/promises'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import { StreamError } from '../protocol/errors.js'
import type { AckGate, DurableStorage } from '../storage/durable.js'
import { WalRetiredError } from '../storage/wal/wal-source.js'
import { log } from '../util/log.js'
import { type Hello, MessageReader, MessageType, encodeCommit, encodeDataHead, encodeEnd, encodeFramesHead, encodeJson } from './replication-wire.js'
import { type ReplicaFile, divergence } from './replica-file.js'

/** WAL bytes kept in memory for followers: a follower further behind reads the files. */
const RECENT_BYTES_MAX = 64 * 1024 * 1024
/** A committed LSN no batch carried goes to idle followers after this long. */
const COMMIT_DELAY_MS = 5
/** At most this much is sent per message. */
const SEND_BYTES_MAX = 4 * 1024 * 1024
/** A follower's socket buffer beyond which nothing more is sent until it drains. */
const SOCKET_BUFFER_MAX = 8 * 1024 * 1024
/** WAL kept for a connected follower that is behind, at most. */
const RETAIN_BYTES_MAX = 1024 * 1024 * 1024
/** A follower must say HELLO within this long of connecting. */
export const HELLO_TIMEOUT_MS = 5000
/** The WAL from a snapshot's LSN is kept this long for the follower to come back for it. */
const SNAPSHOT_HOLD_MS = 5 * 60 * 1000
/** A snapshot file is read and sent this much at a time. */
const SNAPSHOT_CHUNK_BYTES = 1024 * 1024

interface Batch {
  readonly start: number
  readonly end: number
  readonly bytes: Buffer
  readonly sync: boolean
}

interface Waiter {
  readonly lsn: number
  readonly sinceMs: number
  readonly resolve: () => void
  readonly reject: (error: unknown) => void
}

export interface FollowerStatus {
  readonly nodeId: string
  readonly ackedLsn: number
  readonly sentLsn: number
}

export interface SourceOptions {
  readonly storage: DurableStorage
  readonly dataDir: string
  readonly file: ReplicaFile
  readonly epoch: number
  /** Where this epoch's first batch (the barrier) starts: nothing counts as acknowledged
   * until a majority holds a batch of this epoch (earlier epochs' batches are committed by
   * it, never by counting copies of them; Raft §5.4.2). */
  readonly epochStartLsn: number
  readonly replicas: number
  /** Acknowledgements wait at most this long for a majority before the leader steps down. */
  readonly ackTimeoutMs: number
  /** The leader's own lease deadline has not passed. */
  readonly leaseValid: () => boolean
  /** Leadership cannot go on (the reason is logged and put in every failed answer). */
  readonly stepDown: (reason: string) => void
}

class Session {
  acked: number
  sent: number
  committedSent = 0
  reading = false

  constructor(
    readonly nodeId: string,
    readonly socket: Socket,
    from: number,
  ) {
    this.acked = from
    this.sent = from
  }
}

export class ReplicationSource implements AckGate {
  private recent: Batch[] = []
  private recentBytes = 0
  private readonly sessions = new Map<string, Session>()
  private waiters: Waiter[] = []
  private timer: NodeJS.Timeout | undefined
  private commitTimer: NodeJS.Timeout | undefined
  private stopped: string | undefined
  /** Per follower sent a snapshot: gives back the WAL kept for it. */
  private readonly snapshotHolds = new Map<string, () => void>()
  committedLsn: number
  /** End of the last batch handed over (written here, or being written). */
  private endLsn: number

  constructor(private readonly options: SourceOptions) {
    this.committedLsn = 0
    this.endLsn = options.storage.walLsn
    this.timer = setInterval(() => this.checkWaiters(), Math.max(20, Math.floor(options.ackTimeoutMs / 10)))
    this.timer.unref()
  }

  private get quorum(): number {
    return Math.floor(this.options.replicas / 2) + 1
  }

  /** Oldest LSN a connected follower has not acknowledged: its WAL segments are kept, up to
   * RETAIN_BYTES_MAX behind the end (a follower further behind gets a snapshot instead of
   * filling this disk). */
  get neededLsn(): number {
    const floor = this.options.storage.walLsn - RETAIN_BYTES_MAX
    let needed = Number.MAX_SAFE_INTEGER
    for (const session of this.sessions.values()) if (session.acked >= floor) needed = Math.min(needed, session.acked)
    return needed
  }

  followers(): FollowerStatus[] {
    return [...this.sessions.values()].map((session) => ({ nodeId: session.nodeId, ackedLsn: session.acked, sentLsn: session.sent }))
  }

  /** The WAL starts writing a batch: keep it for the followers and send it now, so their
   * writes run beside this disk's (an acknowledgement waits for the slower of the two, not
   * for both in turn). This leader's own position counts once its write is done. */
  sending(buffers: readonly Uint8Array[], start: number, end: number, sync: boolean): void {
    const bytes = buffers.length === 1 ? Buffer.from(buffers[0]!.buffer, buffers[0]!.byteOffset, buffers[0]!.length) : Buffer.concat(buffers as Uint8Array[], end - start)
    this.recent.push({ start, end, bytes, sync })
    this.recentBytes += bytes.length
    this.endLsn = end
    while (this.recentBytes > RECENT_BYTES_MAX && this.recent.length > 1) this.recentBytes -= this.recent.shift()!.bytes.length
    for (const session of this.sessions.values()) this.pump(session)
  }

  /** This leader's WAL wrote up to `lsn`: its own position moved. */
  written(): void {
    this.advance()
  }

  acknowledged(lsn: number): Promise<void> | undefined {
    if (this.stopped !== undefined) return Promise.reject(notLeader(this.stopped))
    if (lsn <= this.committedLsn) return undefined
    return new Promise((resolve, reject) => this.waiters.push({ lsn, sinceMs: performance.now(), resolve, reject }))
  }

  /** A follower connected and said HELLO: find where its log parts from ours, then stream. */
  attach(socket: Socket, hello: Hello, reader: MessageReader): void {
    const { storage, file } = this.options
    if (this.stopped !== undefined) return refuse(socket, `not the leader: ${this.stopped}`)
    const from = Math.min(hello.lsn, divergence(file.history, storage.walLsn, hello.epochs, hello.lsn))
    this.snapshotHolds.get(hello.nodeId)?.()
    storage.oldestWalLsn().then(
      (oldest) => {
        if (socket.destroyed || this.stopped !== undefined) return
        if (from < oldest || storage.walLsn - from > RETAIN_BYTES_MAX) return void this.sendSnapshot(socket, hello.nodeId, `its log ends at ${from}, this leader's WAL starts at ${oldest}`)
        this.stream(socket, hello, reader, from)
      },
      () => socket.destroy(),
    )
  }

  /** A follower this leader's WAL can bring up to date: batches from `from` on. */
  private stream(socket: Socket, hello: Hello, reader: MessageReader, from: number): void {
    const { file, epoch } = this.options
    const previous = this.sessions.get(hello.nodeId)
    if (previous !== undefined) previous.socket.destroy()
    const session = new Session(hello.nodeId, socket, from)
    this.sessions.set(hello.nodeId, session)
    socket.setNoDelay(true)
    // A follower whose machine vanished without a reset is found out in seconds, not minutes.
    socket.setKeepAlive(true, 1000)
    socket.write(encodeJson(MessageType.Welcome, { epoch, from, epochs: file.history.filter(([, start]) => start >= from) }))
    log.info({ follower: hello.nodeId, from, followerLsn: hello.lsn }, `ringstream: follower ${hello.nodeId} joined at LSN ${from}`)
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk, (message) => {
          if (message.type !== MessageType.Ack) throw new Error(`unexpected message ${message.type} from a follower`)
          // Never more than was sent: a confused peer must not acknowledge for others.
          const lsn = Math.min(message.lsn, session.sent)
          if (lsn > session.acked) session.acked = lsn
          this.advance()
        })
      } catch (error) {
        log.warn({ follower: hello.nodeId }, `ringstream: dropping follower ${hello.nodeId}: ${(error as Error).message}`)
        socket.destroy()
      }
    })
    socket.on('drain', () => this.pump(session))
    socket.on('close', () => {
      if (this.sessions.get(hello.nodeId) === session) this.sessions.delete(hello.nodeId)
    })
    this.pump(session)
  }

  /** A follower behind what the WAL keeps (or new and empty): a copy of this node's data
   * as of a checkpoint; the follower installs it, starts again, and is streamed from the
   * checkpoint's LSN (kept here meanwhile). */
  private async sendSnapshot(socket: Socket, nodeId: string, why: string): Promise<void> {
    const { storage, file, dataDir } = this.options
    let dir: string | undefined
    let release: (() => void) | undefined
    try {
      dir = await mkdtemp(join(dataDir, 'snapshot-out-'))
      const snapshot = await storage.snapshot(dir)
      release = snapshot.release
      this.snapshotHolds.get(nodeId)?.()
      this.snapshotHolds.set(nodeId, () => {
        snapshot.release()
        this.snapshotHolds.delete(nodeId)
      })
      log.info({ follower: nodeId, lsn: snapshot.lsn, files: snapshot.files.length }, `ringstream: sending follower ${nodeId} a snapshot at LSN ${snapshot.lsn} (${why})`)
      socket.write(encodeJson(MessageType.Snapshot, { lsn: snapshot.lsn, epochs: file.history.filter(([, start]) => start < snapshot.lsn) }))
      const registry = join(dir, 'registry/data.mdb')
      if (!(await sendFile(socket, 'registry/data.mdb', registry))) throw new Error(`the registry copy ${registry} is missing`)
      for (const path of snapshot.files) {
        await sendFile(socket, path, join(dataDir, path))
        if (socket.destroyed) throw new Error('the follower went away')
      }
      socket.end(encodeEnd())
      // Kept until the follower comes back for the rest, or for SNAPSHOT_HOLD_MS from now.
      const hold = this.snapshotHolds.get(nodeId)
      setTimeout(() => {
        if (this.snapshotHolds.get(nodeId) === hold) hold?.()
      }, SNAPSHOT_HOLD_MS).unref()
    } catch (error) {
      log.warn({ follower: nodeId }, `ringstream: snapshot for follower ${nodeId} failed: ${(error as Error).message}`)
      if (release !== undefined) this.snapshotHolds.get(nodeId)?.()
      socket.destroy()
    } finally {
      if (dir !== undefined) await rm(dir, { recursive: true, force: true }).catch(() => {})
    }
  }

  /** Sends a follower what it has not been sent, while its socket takes it. */
  private pump(session: Session): void {
    const { socket } = session
    if (session.reading || socket.destroyed || this.stopped !== undefined) return
    const { epoch, storage } = this.options
    while (session.sent < this.endLsn && socket.writableLength < SOCKET_BUFFER_MAX) {
      const index = this.recentIndex(session.sent)
      if (index === undefined) return this.readBack(session)
      let end = index
      let bytes = 0
      let sync = false
      while (end < this.recent.length && bytes < SEND_BYTES_MAX) {
        bytes += this.recent[end]!.bytes.length
        sync ||= this.recent[end]!.sync
        end++
      }
      socket.cork()
      socket.write(encodeFramesHead(epoch, session.sent, this.committedLsn, sync, bytes))
      for (let i = index; i < end; i++) socket.write(this.recent[i]!.bytes)
      socket.uncork()
      session.sent = this.recent[end - 1]!.end
      session.committedSent = this.committedLsn
    }
  }

  /** Followers learn the committed LSN with the next batch; one idle since hears it alone,
   * at most every COMMIT_DELAY_MS (a message per batch and follower cost the leader a
   * syscall each under load, when the next batch carries it anyway). */
  private scheduleCommit(): void {
    if (this.commitTimer !== undefined) return
    this.commitTimer = setTimeout(() => {
      this.commitTimer = undefined
      if (this.stopped !== undefined) return
      for (const session of this.sessions.values()) {
        if (session.committedSent >= this.committedLsn || session.socket.destroyed) continue
        session.socket.write(encodeCommit(this.options.epoch, this.committedLsn))
        session.committedSent = this.committedLsn
      }
    }, COMMIT_DELAY_MS)
  }

  /** The index of the kept batch starting at `lsn`; undefined: older than memory keeps. */
  private recentIndex(lsn: number): number | undefined {
    let low = 0
    let high = this.recent.length - 1
    while (low <= high) {
      const middle = (low + high) >> 1
      const start = this.recent[middle]!.start
      if (start === lsn) return middle
      if (start < lsn) low = middle + 1
      else high = middle - 1
    }
    return undefined
  }

  private readBack(session: Session): void {
    session.reading = true
    const { storage, epoch } = this.options
    storage.readWal(session.sent, SEND_BYTES_MAX).then(
      ({ bytes, endLsn }) => {
        session.reading = false
        if (session.socket.destroyed) return
        if (bytes.length === 0) {
          log.error({ follower: session.nodeId }, `ringstream: the WAL reads back nothing valid at LSN ${session.sent}: dropping follower ${session.nodeId}`)
          return refuse(session.socket, `this leader's WAL reads back nothing valid at LSN ${session.sent}`)
        }
        session.socket.write(encodeFramesHead(epoch, session.sent, this.committedLsn, true, bytes.length))
        session.socket.write(bytes)
        session.sent = endLsn
        this.pump(session)
      },
      (error: unknown) => {
        session.reading = false
        const reason = error instanceof WalRetiredError ? `it is behind what this leader's WAL keeps (${error.message}): it needs a snapshot` : (error as Error).message
        log.warn({ follower: session.nodeId }, `ringstream: cannot send follower ${session.nodeId} LSN ${session.sent}: ${reason}`)
        refuse(session.socket, reason)
      },
    )
  }

  /** The majority position moved on: acknowledge what it covers. */
  private advance(): void {
    if (this.stopped !== undefined) return
    const positions = [this.options.storage.walLsn]
    for (const session of this.sessions.values()) positions.push(session.acked)
    if (positions.length < this.quorum) return
    positions.sort((a, b) => b - a)
    const majority = positions[this.quorum - 1]!
    if (majority <= this.committedLsn || majority <= this.options.epochStartLsn) return
    if (!this.options.leaseValid()) return this.stop('its etcd lease deadline passed before a majority had the batch')
    this.committedLsn = majority
    let done = 0
    while (done < this.waiters.length && this.waiters[done]!.lsn <= majority) this.waiters[done++]!.resolve()
    if (done > 0) this.waiters.splice(0, done)
    this.scheduleCommit()
  }

  private checkWaiters(): void {
    const oldest = this.waiters[0]
    if (oldest === undefined || this.stopped !== undefined) return
    if (!this.options.leaseValid()) return this.stop('its etcd lease deadline passed')
    const waited = performance.now() - oldest.sinceMs
    if (waited > this.options.ackTimeoutMs) {
      const have = 1 + this.sessions.size
      this.stop(`no majority of the shard's ${this.options.replicas} replicas acknowledged within ${this.options.ackTimeoutMs} ms (${have} connected, ${this.quorum} needed)`)
    }
  }

  /** Stops leading: every waiting append fails (503), followers are dropped. */
  stop(reason: string): void {
    if (this.stopped !== undefined) return
    this.stopped = reason
    if (this.timer !== undefined) clearInterval(this.timer)
    if (this.commitTimer !== undefined) clearTimeout(this.commitTimer)
    const error = notLeader(reason)
    for (const waiter of this.waiters) waiter.reject(error)
    this.waiters = []
    for (const session of this.sessions.values()) session.socket.destroy()
    this.sessions.clear()
    this.recent = []
    this.options.stepDown(reason)
  }
}

/** Sends one file of a snapshot, as long as it is now; false when it is gone meanwhile
 * (a stream deleted since: the WAL replay after the snapshot's LSN deletes it anyway). */
async function sendFile(socket: Socket, name: string, path: string): Promise<boolean> {
  let handle: FileHandle
  try {
    handle = await open(path, 'r')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw error
  }
  try {
    const size = (await handle.stat()).size
    socket.write(encodeJson(MessageType.SnapshotFile, { path: name }))
    let at = 0
    while (at < size && !socket.destroyed) {
      const chunk = Buffer.allocUnsafe(Math.min(SNAPSHOT_CHUNK_BYTES, size - at))
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, at)
      if (bytesRead === 0) break
      socket.write(encodeDataHead(bytesRead))
      if (!socket.write(chunk.subarray(0, bytesRead))) await drained(socket)
      at += bytesRead
    }
    return true
  } finally {
    await handle.close()
  }
}

/** Resolves when the socket drains or closes, leaving no listener behind. */
function drained(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      socket.off('drain', done)
      socket.off('close', done)
      resolve()
    }
    socket.on('drain', done)
    socket.on('close', done)
  })
}

function notLeader(reason: string): StreamError {
  return new StreamError('REPLICAS_UNAVAILABLE', `this node stopped leading its shard: ${reason}; the write may or may not have been kept: retry (an idempotent producer's retry is answered as a duplicate if it was)`)
}

function refuse(socket: Socket, reason: string): void {
  socket.end(encodeJson(MessageType.Refuse, { reason }))
}
