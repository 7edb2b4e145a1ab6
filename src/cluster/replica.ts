// cluster/replica.ts — one node as a replica of its shard: membership, elections and the
// role it plays (candidate, follower, leader), all through etcd, which does the consensus
// so that ringstream does not.
//
// etcd keys, under /ringstream/<cluster>/:
//   members/<node-id>         {url, shard, replicas}, under the node's lease: one live node per id
//   shards/<shard>/leader     {nodeId, url, replication}, under the leader's lease; its
//                             create revision is the shard's epoch (the fencing token)
//   shards/<shard>/epoch      no lease; written with each new leader: its mod revision is
//                             the newest epoch, so a vote names the election it is for
//   shards/<shard>/votes/<id> {after, lastEpoch, lsn}, under the voter's lease
// With no leader, every live replica publishes its vote (the epoch of its last WAL batch
// and its WAL's end). The replica whose log is newest among a majority of votes creates
// the leader key in a transaction that fails if anyone else did first, or if the epoch
// moved. Any acknowledged batch is on a majority, so it is in the winner's log.
// A new leader applies its whole WAL, writes a barrier record and waits until a majority
// has it before serving; followers replicate from it (replication-source/-sink.ts).
// Stepping down (lease lapsed, no majority, the key gone) ends this process: the
// supervisor starts it again as a follower, whose recovery is the one tested path.

import { type Server as NetServer, type Socket, createServer as createNetServer } from 'node:net'
import type { Exchange } from '../http/exchange.js'
import type { ShardRouting } from '../http/context.js'
import { StreamError } from '../protocol/errors.js'
import type { DurableStorage } from '../storage/durable.js'
import type { Engine } from '../streams/engine.js'
import { log } from '../util/log.js'
import { Etcd, type EtcdKv, EtcdUnavailableError } from './etcd.js'
import { NodeLease } from './lease.js'
import { pointProxies } from './proxy-admin.js'
import { type Identity, ReplicaFile } from './replica-file.js'
import { ReplicationSink } from './replication-sink.js'
import { HELLO_TIMEOUT_MS, ReplicationSource } from './replication-source.js'
import { MessageReader, MessageType, encodeJson } from './replication-wire.js'

export type Role = 'candidate' | 'follower' | 'leader'

export interface ReplicaOptions {
  readonly etcd: readonly string[]
  readonly clusterName: string
  readonly shard: string
  readonly nodeId: string
  readonly replicas: number
  readonly leaseTtlMs: number
  readonly dataDir: string
  /** host:port to listen on for followers (port 0: any). */
  readonly replicationListen: string
  /** host:port followers are told, when not the listen address. */
  readonly replicationAdvertise: string | undefined
  readonly proxyAdmin: readonly string[] | undefined
  readonly proxyBackend: string
  readonly storage: DurableStorage
  readonly engine: Engine
  /** This node's URL, as the other nodes (and the proxy) reach it. */
  readonly nodeUrl: () => string
  /** Passes a request to another node (cluster/forwarding.ts). */
  readonly forward: (x: Exchange, url: string) => Promise<void>
  /** This node leads now (after its barrier): start what only a leader runs. */
  readonly leading: (epoch: number) => Promise<void> | void
  /** Leadership cannot go on: the process must end (its supervisor restarts it). */
  readonly stepDown: (reason: string) => void
}

interface LeaderInfo {
  readonly nodeId: string
  readonly url: string
  readonly replication: string
}

interface Vote {
  readonly nodeId: string
  readonly after: number
  readonly lastEpoch: number
  readonly lsn: number
}

/** Between two looks at etcd when nothing wakes the loop sooner. */
const CANDIDATE_POLL_MS = 50
/** A follower waits this long on etcd's watch for its leader key to change. */
const FOLLOWER_WATCH_MS = 1000
/** The most a node sends before its HELLO is read (1,000 epochs of history fit). */
const HELLO_BYTES_MAX = 256 * 1024
/** A leader that steps down stays out of elections this many lease TTLs. */
const ABSTAIN_TTLS = 3
/** After an error talking to etcd or the leader. */
const RETRY_MS = 200
/** After a configuration error (an id in use, replica counts that disagree): looked at again
 * this often, since the other side may go away. */
const CONFIG_RETRY_MS = 1000

export class ShardReplica implements ShardRouting {
  role: Role = 'candidate'
  epoch = 0
  private leader: LeaderInfo | undefined
  /** Why this node serves nothing now; undefined: it serves. */
  private problem: string | undefined = 'starting: not yet in touch with etcd'
  private readonly etcd: Etcd
  private readonly lease: NodeLease
  private file: ReplicaFile | undefined
  private server: NetServer | undefined
  private advertised = ''
  private source: ReplicationSource | undefined
  private sink: ReplicationSink | undefined
  private sinkEnded = false
  private lastVote = ''
  /** The last reason replication from the leader ended (logged once). */
  private lastEnd: string | undefined
  /** Leading and serving (after the barrier). */
  private serving = false
  private closed = false
  private readonly keys: { leader: string; epoch: string; member: string; votes: string; vote: string; members: string }

  constructor(private readonly options: ReplicaOptions) {
    this.etcd = new Etcd(options.etcd, { requestTimeoutMs: Math.min(1000, Math.floor(options.leaseTtlMs / 3)) })
    this.lease = new NodeLease(this.etcd, options.leaseTtlMs)
    this.lease.onLost = (reason) => this.leaseLost(reason)
    const root = `/ringstream/${options.clusterName}/`
    const shard = `${root}shards/${options.shard}/`
    this.keys = {
      leader: `${shard}leader`,
      epoch: `${shard}epoch`,
      votes: `${shard}votes/`,
      vote: `${shard}votes/${options.nodeId}`,
      members: `${root}members/`,
      member: `${root}members/${options.nodeId}`,
    }
  }

  private get identity(): Identity {
    return { cluster: this.options.clusterName, shard: this.options.shard, nodeId: this.options.nodeId }
  }

  private get quorum(): number {
    return Math.floor(this.options.replicas / 2) + 1
  }

  /** Checks the data directory belongs to this shard and node (throws if not), opens the
   * follower port, and starts taking part in the shard. */
  async start(): Promise<void> {
    this.file = ReplicaFile.open(this.options.dataDir, this.identity)
    await this.listen()
    void this.run()
  }

  private async listen(): Promise<void> {
    const [host, port] = splitHostPort(this.options.replicationListen)
    const server = createNetServer((socket) => this.accept(socket))
    this.server = server
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    server.on('error', (error) => log.warn({ shard: this.options.shard }, `ringstream: replication port: ${error.message}`))
    const bound = server.address()
    const boundPort = typeof bound === 'object' && bound !== null ? bound.port : port
    const advertisedHost = host === '0.0.0.0' || host === '::' ? new URL(this.options.nodeUrl()).hostname : host
    this.advertised = this.options.replicationAdvertise ?? `${advertisedHost}:${boundPort}`
  }

  private accept(socket: Socket): void {
    const reader = new MessageReader()
    socket.on('error', () => socket.destroy())
    const silent = setTimeout(() => socket.destroy(), HELLO_TIMEOUT_MS)
    silent.unref()
    let received = 0
    const onData = (chunk: Buffer): void => {
      received += chunk.length
      // A HELLO is a few KiB (the epoch history); anything larger first is not a follower.
      if (received > HELLO_BYTES_MAX) return void socket.destroy()
      try {
        reader.push(chunk, (message) => {
          if (message.type !== MessageType.Hello) throw new Error('the first message must be HELLO')
          clearTimeout(silent)
          socket.off('data', onData)
          const { hello } = message
          const source = this.source
          if (hello.cluster !== this.options.clusterName || hello.shard !== this.options.shard) {
            socket.end(encodeJson(MessageType.Refuse, { reason: `this is shard ${this.options.shard} of cluster ${this.options.clusterName}` }))
          } else if (this.role !== 'leader' || source === undefined) {
            socket.end(encodeJson(MessageType.Refuse, { reason: 'not the leader' }))
          } else source.attach(socket, hello, reader)
        })
      } catch {
        socket.destroy()
      }
    }
    socket.on('data', onData)
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      try {
        await this.step()
      } catch (error) {
        if (this.closed) return
        const problem = error instanceof EtcdUnavailableError ? `etcd unreachable: ${error.message}` : (error as Error).message
        // Said once, not at every retry.
        if (problem !== this.problem) log.warn({ shard: this.options.shard }, `ringstream: replica ${this.options.nodeId}: ${problem}`)
        this.problem = problem
        await sleep(error instanceof EtcdUnavailableError ? RETRY_MS : CONFIG_RETRY_MS)
      }
    }
  }

  private async step(): Promise<void> {
    if (this.lease.leaseId === undefined) {
      if (this.role === 'leader') return this.stepDown('its etcd lease is gone')
      await this.lease.grant()
      await this.register()
    }
    // Every key this step writes goes under this lease; lost meanwhile, the next step starts over.
    const lease = this.lease.leaseId
    if (lease === undefined) return
    if (this.role === 'leader') {
      const { kv } = await this.etcd.get(this.keys.leader)
      if (kv === undefined || kv.createRevision !== this.epoch) return this.stepDown('its leader key in etcd is gone or replaced')
      // A slow etcd call earlier is forgotten once etcd answers again (the lease fences).
      if (this.serving) this.problem = undefined
      await sleep(Math.floor(this.options.leaseTtlMs / 4))
      return
    }
    const { kv, revision } = await this.etcd.get(this.keys.leader)
    if (kv !== undefined) return this.follow(kv, revision, lease)
    this.role = 'candidate'
    this.leader = undefined
    this.problem ??= 'no leader: an election is under way'
    await this.closeSink()
    await this.campaign(lease)
    await sleep(CANDIDATE_POLL_MS)
  }

  /** Registers this node id under its lease; refuses an id a live other node holds. */
  private async register(): Promise<void> {
    const { nodeId, shard, replicas } = this.options
    const value = JSON.stringify({ url: this.options.nodeUrl(), shard, replicas })
    const lease = this.lease.leaseId!
    for (;;) {
      const result = await this.etcd.txn([{ key: this.keys.member, target: 'CREATE', createRevision: 0 }], [{ put: { key: this.keys.member, value, lease } }], [{ get: { key: this.keys.member } }])
      if (result.succeeded) break
      const existing = result.gets[0]?.[0]
      if (existing === undefined) continue
      const held = parseJson<{ url: string; shard: string }>(existing.value)
      if (held?.url !== this.options.nodeUrl()) {
        await this.lease.revoke()
        throw new Error(`node id ${nodeId} is already used by a live node at ${held?.url ?? '?'} (shard ${held?.shard ?? '?'}): give each node its own --node-id`)
      }
      // This node's previous life (killed before its lease ran out): its key goes now.
      await this.etcd.txn([{ key: this.keys.member, target: 'MOD', modRevision: existing.modRevision }], [{ delete: { key: this.keys.member } }])
    }
    const { kvs } = await this.etcd.getPrefix(this.keys.members)
    const peers = kvs.map((each) => parseJson<{ shard: string; replicas: number }>(each.value)).filter((each) => each?.shard === shard)
    const disagreeing = peers.find((each) => each?.replicas !== replicas)
    // Refused for good: the lease (and the member key under it) goes, so the next try
    // registers again rather than going on as a member.
    if (disagreeing !== undefined) {
      await this.lease.revoke()
      throw new Error(`shard ${shard}: this node says --replicas ${replicas}, another member says ${disagreeing.replicas}: every replica of a shard must use the same count`)
    }
    if (peers.length > replicas) {
      await this.lease.revoke()
      throw new Error(`shard ${shard} has ${peers.length} live members but --replicas ${replicas}: a majority could be counted twice; remove a node or raise --replicas on all of them`)
    }
    this.lastVote = ''
  }

  private async follow(kv: EtcdKv, revision: number, lease: string): Promise<void> {
    const info = parseJson<LeaderInfo>(kv.value)
    const epoch = kv.createRevision
    if (info === undefined) throw new Error(`the leader key of shard ${this.options.shard} holds no leader`)
    if (info.nodeId === this.options.nodeId) {
      // Under this very lease: this node's election transaction won though its answer was
      // lost (a timeout, then a retry elsewhere that found the key).
      if (kv.lease === lease) return this.lead(epoch)
      // This node led in a previous life; that process is gone (this one holds the data
      // directory's lock): its key goes now rather than at its lease's end.
      await this.etcd.txn([{ key: this.keys.leader, target: 'CREATE', createRevision: epoch }], [{ delete: { key: this.keys.leader } }])
      await sleep(CANDIDATE_POLL_MS)
      return
    }
    if (epoch < this.file!.lastEpoch) throw new Error(`the leader key names epoch ${epoch}, older than this node's ${this.file!.lastEpoch}`)
    if (this.sink === undefined || this.sinkEnded || this.sink.epoch !== epoch) {
      await this.closeSink()
      this.role = 'follower'
      this.epoch = epoch
      this.leader = info
      this.sinkEnded = false
      this.sink = new ReplicationSink({
        storage: this.options.storage,
        file: this.file!,
        identity: this.identity,
        address: info.replication,
        epoch,
        dataDir: this.options.dataDir,
        onSnapshot: () => this.exit('a snapshot from the leader waits to be installed'),
        onFatal: (reason) => this.exit(reason),
        onEnd: (reason) => {
          this.sinkEnded = true
          // Said once per reason, not at every reconnection.
          if (!this.closed && reason !== this.lastEnd) log.warn({ shard: this.options.shard, epoch }, `ringstream: replica ${this.options.nodeId}: replication from ${info.nodeId} ended: ${reason}`)
          this.lastEnd = reason
        },
      })
      log.info({ shard: this.options.shard, epoch, leader: info.nodeId }, `ringstream: replica ${this.options.nodeId} follows ${info.nodeId} (${info.url}) in epoch ${epoch}`)
    }
    this.problem = undefined
    this.lastEnd = this.sinkEnded ? this.lastEnd : undefined
    if (this.sinkEnded) await sleep(RETRY_MS)
    else await this.etcd.waitForChange(this.keys.leader, revision, FOLLOWER_WATCH_MS)
  }

  private async closeSink(): Promise<void> {
    const sink = this.sink
    this.sink = undefined
    if (sink !== undefined) await sink.close()
  }

  /** No leader: vote, and stand if this node's log is the newest of a majority's. */
  private async campaign(lease: string): Promise<void> {
    const abstainMs = this.file!.abstainingMs()
    if (abstainMs > 0) {
      // It stepped down for want of a majority: it may be the one cut off; the others elect
      // without it (safe: a majority of them holds everything acknowledged).
      this.problem = `no leader: this replica stepped down for want of a majority and stays out of elections for ${Math.ceil(abstainMs / 1000)} s more`
      return
    }
    const { kv: epochKv } = await this.etcd.get(this.keys.epoch)
    const after = epochKv?.modRevision ?? 0
    // The epoch key names the last leader: on a tie it stands last (it may be the one failing).
    const previous = epochKv?.value
    const { storage } = this.options
    const file = this.file!
    const vote: Vote = { nodeId: this.options.nodeId, after, lastEpoch: file.lastEpoch, lsn: storage.walLsn }
    const body = JSON.stringify(vote)
    if (body !== this.lastVote) {
      await this.etcd.put(this.keys.vote, body, lease)
      this.lastVote = body
    }
    const { kvs } = await this.etcd.getPrefix(this.keys.votes)
    const votes = kvs.map((each) => parseJson<Vote>(each.value)).filter((each): each is Vote => each !== undefined && each.after === after)
    if (votes.length < this.quorum) {
      this.problem = `no leader: ${votes.length} of the shard's ${this.options.replicas} replicas are reachable, ${this.quorum} are needed to elect one`
      return
    }
    this.problem = 'no leader: an election is under way'
    votes.sort((a, b) => newestFirst(a, b) || (a.nodeId === previous ? 1 : 0) - (b.nodeId === previous ? 1 : 0) || (a.nodeId < b.nodeId ? -1 : 1))
    if (votes[0]!.nodeId !== this.options.nodeId) return
    const leader: LeaderInfo = { nodeId: this.options.nodeId, url: this.options.nodeUrl(), replication: this.advertised }
    const result = await this.etcd.txn(
      [
        { key: this.keys.leader, target: 'CREATE', createRevision: 0 },
        after === 0 ? { key: this.keys.epoch, target: 'CREATE', createRevision: 0 } : { key: this.keys.epoch, target: 'MOD', modRevision: after },
      ],
      [{ put: { key: this.keys.leader, value: JSON.stringify(leader), lease } }, { put: { key: this.keys.epoch, value: this.options.nodeId } }],
    )
    if (result.succeeded) await this.lead(result.revision)
  }

  /** Won the election for `epoch`: applies the whole WAL, then serves once a majority has a
   * barrier. Anything failing on the way ends the leadership (and the process). */
  private async lead(epoch: number): Promise<void> {
    const { storage, replicas, leaseTtlMs } = this.options
    const file = this.file!
    this.role = 'leader'
    this.epoch = epoch
    this.leader = undefined
    this.problem = `leading epoch ${epoch}: waiting for a majority to hold everything before serving`
    // A disk that stalls while this node takes over lets the shard go too.
    this.lease.holdBack = () => {
      const stalled = storage.walStalledMs
      return stalled > leaseTtlMs ? `a WAL write has been stalled for ${Math.round(stalled)} ms: letting the shard go` : undefined
    }
    try {
      file.begin(epoch, storage.walLsn)
      log.info({ shard: this.options.shard, epoch, walLsn: storage.walLsn }, `ringstream: replica ${this.options.nodeId} leads shard ${this.options.shard} in epoch ${epoch}`)
      const source = new ReplicationSource({ storage, dataDir: this.options.dataDir, file, epoch, epochStartLsn: storage.walLsn, replicas, ackTimeoutMs: leaseTtlMs, leaseValid: () => this.lease.valid, stepDown: (reason) => this.stepDown(reason) })
      this.source = source
      storage.onWalWriting = (buffers, start, end, sync) => source.sending(buffers, start, end, sync)
      // Followers may hold a batch this disk then refused: this leader cannot go on.
      storage.onWalWriteFailed = (error) => this.stepDown(`a WAL write failed after its batch went to the followers: ${(error as Error).message}`)
      const ready = this.takeOver(epoch)
      ready.catch(() => {}) // reported through the race below, whichever settles first
      // Serving within a few TTLs of winning, or not at all.
      const deadline = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`not serving ${3 * leaseTtlMs} ms after winning`)), 3 * leaseTtlMs).unref())
      await Promise.race([ready, deadline])
    } catch (error) {
      return this.stepDown(`taking over failed: ${(error as Error).message}`)
    }
  }

  private async takeOver(epoch: number): Promise<void> {
    const { storage, engine } = this.options
    await storage.lead(this.source)
    // A record of this epoch on a majority: everything before it is too, so all of it may be served.
    await engine.controls.put('cluster/epoch', String(epoch))
    if (this.role !== 'leader' || this.closed) return
    engine.registry.expireFromNow()
    await this.options.leading(epoch)
    this.serving = true
    this.problem = undefined
    const admins = this.options.proxyAdmin
    if (admins !== undefined && admins.length > 0) {
      const errors = await pointProxies(admins, this.options.proxyBackend, `shard-${this.options.shard}`, this.options.nodeUrl())
      for (const error of errors) log.warn({ shard: this.options.shard }, `ringstream: could not point the proxy at this leader: ${error}`)
    }
  }

  private leaseLost(reason: string): void {
    if (this.role === 'leader') return this.stepDown(`its etcd lease is lost: ${reason}`)
    this.lastVote = ''
  }

  private stepDown(reason: string): void {
    if (this.closed) return
    this.closed = true
    this.serving = false
    this.problem = `stepping down: ${reason}`
    log.error({ shard: this.options.shard, epoch: this.epoch }, `ringstream: replica ${this.options.nodeId} stops leading shard ${this.options.shard} (epoch ${this.epoch}): ${reason}`)
    this.source?.stop(reason)
    // It may be the one cut off (from its followers, or etcd): back as a candidate, it would
    // win again with its longer, unacknowledged log. The others elect without it meanwhile.
    try {
      this.file?.abstain(ABSTAIN_TTLS * this.options.leaseTtlMs)
    } catch {
      // Not kept: it only votes sooner.
    }
    void this.lease.revoke().finally(() => this.options.stepDown(reason))
  }

  /** A follower whose state is in doubt (a failed write or apply), or a snapshot to install:
   * the process starts again. */
  private exit(reason: string): void {
    if (this.closed) return
    this.closed = true
    this.problem = `restarting: ${reason}`
    log.error({ shard: this.options.shard }, `ringstream: replica ${this.options.nodeId} restarts: ${reason}`)
    this.options.stepDown(reason)
  }

  // --- ShardRouting (http/) ---

  notServing(): StreamError | undefined {
    // A leader past its own lease deadline (woken from a stall) serves nothing, reads included.
    if (this.role === 'leader' && this.serving && !this.lease.valid) return new StreamError('REPLICAS_UNAVAILABLE', `shard ${this.options.shard}: this leader's lease ran out`)
    if (this.problem === undefined && (this.role === 'leader' || this.leader !== undefined)) return undefined
    return new StreamError(this.role === 'leader' ? 'REPLICAS_UNAVAILABLE' : 'NO_LEADER', `shard ${this.options.shard}: ${this.problem ?? 'no leader known yet'}`)
  }

  leaderUrl(): string | undefined {
    return this.role === 'leader' ? undefined : this.leader?.url
  }

  forward(x: Exchange, leaderUrl: string): Promise<void> {
    return this.options.forward(x, leaderUrl)
  }

  status(): object {
    const { storage } = this.options
    return {
      node: this.options.nodeId,
      cluster: this.options.clusterName,
      shard: this.options.shard,
      replicas: this.options.replicas,
      role: this.role,
      epoch: this.epoch,
      leader: this.role === 'leader' ? { nodeId: this.options.nodeId, url: this.options.nodeUrl() } : this.leader === undefined ? null : { nodeId: this.leader.nodeId, url: this.leader.url },
      walLsn: storage.walLsn,
      appliedLsn: storage.stableLsn,
      committedLsn: this.source?.committedLsn ?? null,
      followers: this.source?.followers() ?? [],
      replication: this.advertised,
      leaseRemainingMs: Math.round(this.lease.remainingMs),
      problem: this.problem ?? null,
      etcd: this.etcd.endpoints,
    }
  }

  async close(): Promise<void> {
    this.closed = true
    this.source?.stop('the server is shutting down')
    await this.closeSink()
    this.server?.close()
    await this.lease.revoke()
  }
}

/** Newest log first: the epoch of its last batch, then its end. */
function newestFirst(a: Vote, b: Vote): number {
  return b.lastEpoch - a.lastEpoch || b.lsn - a.lsn
}

function parseJson<T>(text: string): T | undefined {
  try {
    return JSON.parse(text) as T
  } catch {
    return undefined
  }
}

function splitHostPort(address: string): [string, number] {
  const colon = address.lastIndexOf(':')
  return [address.slice(0, colon).replace(/^\[|\]$/g, ''), Number(address.slice(colon + 1))]
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref())
}
