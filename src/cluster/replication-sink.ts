// cluster/replication-sink.ts — a follower's side of replication: one connection to its
// shard's leader. It says where its log ends (HELLO), cuts whatever tail the leader never
// had (WELCOME), then writes the leader's batches byte for byte into its own WAL, several
// arrivals per write while one is in flight (group commit, as on the leader), and
// acknowledges each write's end once written (synced, when a batch asked for it). It
// applies a batch's records — with recovery's code — only once the leader says a majority
// has it (the committed LSN in each message): what it applied is never cut.

import { type FileHandle, mkdir, open, rename, rm } from 'node:fs/promises'
import { type Socket, connect } from 'node:net'
import { join } from 'node:path'
import { SNAPSHOT_INCOMING, SNAPSHOT_READY } from '../storage/snapshot-install.js'
import type { DurableStorage } from '../storage/durable.js'
import { log } from '../util/log.js'
import { type EpochEntry, type Identity, ReplicaFile } from './replica-file.js'
import { type FramesMessage, MessageReader, MessageType, type SnapshotBegin, type Welcome, encodeAck, encodeJson } from './replication-wire.js'

export interface SinkOptions {
  readonly storage: DurableStorage
  readonly file: ReplicaFile
  readonly identity: Identity
  /** The leader's replication address (host:port) and epoch, from etcd. */
  readonly address: string
  readonly epoch: number
  /** The connection ended (the reason is logged); the owner decides what next. */
  readonly onEnd: (reason: string) => void
  readonly dataDir: string
  /** A whole snapshot is in place: the process must start again to install it. */
  readonly onSnapshot: () => void
  /** Writing or applying failed: this node's state is in doubt; the process must start
   * again (recovery is the tested way back). */
  readonly onFatal: (reason: string) => void
}

/** Received bytes waiting to be written beyond which the socket is paused: the leader's
 * sends then wait in its own bounded buffer. */
const QUEUED_BYTES_MAX = 64 * 1024 * 1024

/** What a snapshot may hold: the registry store's file and stream files, nothing else. */
const SNAPSHOT_PATH = /^(registry\/data\.mdb|streams\/[0-9A-Za-z._-]+)$/

async function closeSynced(file: FileHandle | undefined): Promise<void> {
  if (file === undefined) return
  await file.sync()
  await file.close()
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

export class ReplicationSink {
  private readonly socket: Socket
  private readonly reader = new MessageReader()
  private welcomed = false
  /** LSN the next batch must start at. */
  private expected = 0
  private queued: FramesMessage[] = []
  /** Bytes received and not yet written (batches and snapshot chunks). */
  private queuedBytes = 0
  private writing = false
  private committed = 0
  /** Epochs of the leader's history not yet begun in this WAL (recorded once written). */
  private epochs: EpochEntry[] = []
  private ended = false
  /** Chained so batches, cuts and applies happen one after another. */
  private work: Promise<void> = Promise.resolve()
  /** A snapshot being received. */
  private snapshot: { lsn: number; epochs: ReadonlyArray<readonly [number, number]>; file: FileHandle | undefined; files: number } | undefined

  constructor(private readonly options: SinkOptions) {
    const { address, identity, file, storage } = options
    const colon = address.lastIndexOf(':')
    this.socket = connect({ host: address.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(address.slice(colon + 1)) })
    this.socket.setNoDelay(true)
    this.socket.on('connect', () => {
      this.socket.write(encodeJson(MessageType.Hello, { ...identity, epochs: file.history, lsn: storage.walLsn }))
    })
    this.socket.on('data', (chunk: Buffer) => {
      try {
        this.reader.push(chunk, (message) => {
          if (message.type === MessageType.Welcome) this.welcome(message.welcome)
          else if (message.type === MessageType.Frames) this.frames(message.frames)
          else if (message.type === MessageType.Commit) this.commit(message.epoch, message.committedLsn)
          else if (message.type === MessageType.Refuse) this.end(`the leader refused: ${message.reason}`)
          else if (message.type === MessageType.Snapshot) this.snapshotBegin(message.snapshot)
          else if (message.type === MessageType.SnapshotFile) this.snapshotFile(message.path)
          else if (message.type === MessageType.SnapshotData) this.snapshotData(message.bytes)
          else if (message.type === MessageType.SnapshotEnd) this.snapshotEnd()
          else throw new Error(`unexpected message ${message.type} from the leader`)
        })
      } catch (error) {
        this.end(`bad message from the leader: ${(error as Error).message}`)
      }
    })
    this.socket.on('error', (error) => this.end(`connection to the leader at ${address}: ${error.message}`))
    // A snapshot's last steps (syncs, the rename) may still be running when the leader closes.
    this.socket.on('close', () => void this.work.then(() => this.end('the leader closed the connection')))
  }

  get epoch(): number {
    return this.options.epoch
  }

  /** Counts received bytes in; pauses the socket while too many wait. */
  private received(bytes: number): void {
    this.queuedBytes += bytes
    if (this.queuedBytes > QUEUED_BYTES_MAX) this.socket.pause()
  }

  private written(bytes: number): void {
    this.queuedBytes -= bytes
    if (this.queuedBytes <= QUEUED_BYTES_MAX && this.socket.isPaused()) this.socket.resume()
  }

  private welcome(welcome: Welcome): void {
    if (welcome.epoch !== this.options.epoch) return this.end(`the leader answered for epoch ${welcome.epoch}, expected ${this.options.epoch}`)
    this.expected = welcome.from
    this.epochs = welcome.epochs.map(([epoch, start]) => [epoch, start] as const)
    this.welcomed = true
    const { storage, file } = this.options
    this.run(async () => {
      if (welcome.from < storage.walLsn) {
        log.warn({ from: welcome.from, walLsn: storage.walLsn }, `ringstream: cutting ${storage.walLsn - welcome.from} WAL bytes the leader of epoch ${welcome.epoch} does not have`)
        // The history first: a crash between the two leaves it claiming less, never more.
        file.cut(welcome.from)
        await storage.cutTo(welcome.from)
      }
    })
  }

  private frames(message: FramesMessage): void {
    if (!this.welcomed || message.epoch !== this.options.epoch) return this.end(`a batch of epoch ${message.epoch} refused (following epoch ${this.options.epoch})`)
    if (message.fromLsn !== this.expected) return this.end(`a batch at LSN ${message.fromLsn}, expected ${this.expected}`)
    this.expected += message.frames.length
    this.committed = Math.max(this.committed, message.committedLsn)
    this.queued.push(message)
    this.received(message.frames.length)
    if (!this.writing) this.flush()
  }

  private commit(epoch: number, committedLsn: number): void {
    if (epoch !== this.options.epoch) return this.end(`a commit of epoch ${epoch} refused`)
    this.committed = Math.max(this.committed, committedLsn)
    if (!this.writing) this.run(() => this.options.storage.applyTo(this.committed))
  }

  /** Writes everything queued as one WAL write, acknowledges it, applies what is committed. */
  private flush(): void {
    this.writing = true
    this.run(async () => {
      const { storage, file } = this.options
      while (this.queued.length > 0 && !this.ended) {
        const batch = this.queued
        this.queued = []
        const sync = batch.some((each) => each.sync)
        const bytes = batch.length === 1 ? batch[0]!.frames : Buffer.concat(batch.map((each) => each.frames))
        const end = await storage.writeFrames(bytes, sync)
        this.written(bytes.length)
        while (this.epochs.length > 0 && this.epochs[0]![1] < end) {
          const [epoch, start] = this.epochs.shift()!
          file.begin(epoch, start)
        }
        if (!this.socket.destroyed) this.socket.write(encodeAck(end))
        await storage.applyTo(Math.min(this.committed, end))
      }
      this.writing = false
      // A commit that arrived during the last write.
      await storage.applyTo(Math.min(this.committed, storage.walLsn))
    })
  }

  // --- A snapshot instead of batches: written aside, installed at the next start. ---

  private snapshotBegin(begin: SnapshotBegin): void {
    const incoming = join(this.options.dataDir, SNAPSHOT_INCOMING)
    this.snapshot = { lsn: begin.lsn, epochs: begin.epochs, file: undefined, files: 0 }
    log.info({ lsn: begin.lsn }, `ringstream: receiving a snapshot at LSN ${begin.lsn} from the leader (this replica is behind what its WAL keeps)`)
    this.run(async () => {
      await rm(incoming, { recursive: true, force: true })
      await mkdir(join(incoming, 'registry'), { recursive: true })
      await mkdir(join(incoming, 'streams'), { recursive: true })
    })
  }

  private snapshotFile(path: string): void {
    const snapshot = this.snapshot
    if (snapshot === undefined || !SNAPSHOT_PATH.test(path)) return this.end(`a snapshot file named "${path}" refused`)
    snapshot.files++
    this.run(async () => {
      await closeSynced(snapshot.file)
      snapshot.file = await open(join(this.options.dataDir, SNAPSHOT_INCOMING, path), 'w')
    })
  }

  private snapshotData(bytes: Buffer): void {
    const snapshot = this.snapshot
    if (snapshot === undefined) return this.end('snapshot bytes outside a snapshot')
    this.received(bytes.length)
    this.run(async () => {
      if (snapshot.file === undefined) throw new Error('snapshot bytes before any file')
      await snapshot.file.write(bytes)
      this.written(bytes.length)
    })
  }

  private snapshotEnd(): void {
    const snapshot = this.snapshot
    if (snapshot === undefined) return this.end('a snapshot end outside a snapshot')
    const { dataDir, file, onSnapshot } = this.options
    this.run(async () => {
      await closeSynced(snapshot.file)
      snapshot.file = undefined
      const incoming = join(dataDir, SNAPSHOT_INCOMING)
      ReplicaFile.write(incoming, file.identity, snapshot.epochs)
      for (const dir of [join(incoming, 'registry'), join(incoming, 'streams'), incoming]) await syncDir(dir)
      await rename(incoming, join(dataDir, SNAPSHOT_READY))
      await syncDir(dataDir)
      log.info({ lsn: snapshot.lsn, files: snapshot.files }, `ringstream: snapshot at LSN ${snapshot.lsn} received (${snapshot.files} files): starting again to install it`)
      this.ended = true
      this.socket.destroy()
      onSnapshot()
    })
  }

  private run(step: () => Promise<void>): void {
    this.work = this.work.then(step).catch((error: unknown) => {
      this.writing = false
      if (this.ended) return
      this.end(`replicating failed: ${(error as Error).message}`)
      this.options.onFatal(`writing or applying the leader's batches failed: ${(error as Error).message}`)
    })
  }

  private end(reason: string): void {
    if (this.ended) return
    this.ended = true
    this.socket.destroy()
    const file = this.snapshot?.file
    this.snapshot = undefined
    void file?.close().catch(() => {})
    this.options.onEnd(reason)
  }

  /** Closes the connection and waits until nothing it started is still writing. */
  async close(): Promise<void> {
    this.ended = true
    this.socket.destroy()
    await this.work
  }
}
