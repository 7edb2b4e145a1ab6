// test/cluster/cluster-harness.ts — a replicated shard of real ringstream processes on
// loopback for tests: a real etcd (etcd-harness.ts), R nodes supervised like systemd's
// Restart=always (a node that exits, killed or stepping down, is started again), and
// optionally a real HAProxy whose shard server a new leader repoints through the runtime
// API. Each node's output goes to <dir>/<id>.log.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Server as NetServer, type Socket, connect, createServer as createNetServer } from 'node:net'
import { afterAll, beforeAll, expect } from 'vitest'
import { freePortBelowEphemeral } from '../helpers-ports.js'
import { BIN } from '../process.js'
import { type EtcdProcess, etcdAvailable, startEtcd } from './etcd-harness.js'

export interface NodeStatus {
  readonly node: string
  readonly role: 'leader' | 'follower' | 'candidate'
  readonly epoch: number
  readonly walLsn: number
  readonly appliedLsn: number
  readonly committedLsn: number | null
  readonly followers: ReadonlyArray<{ nodeId: string; ackedLsn: number }>
  readonly problem: string | null
}

/** A TCP relay the test can cut (every connection through it dropped, new ones refused)
 * and heal: a network partition of one path, without root or namespaces. */
export class TcpGate {
  private readonly sockets = new Set<Socket>()
  private closed = false
  cut = false

  private constructor(
    private readonly server: NetServer,
    readonly port: number,
  ) {}

  static async open(targetPort: () => number): Promise<TcpGate> {
    const port = await freePortBelowEphemeral()
    let gate: TcpGate | undefined
    const server = createNetServer((client) => {
      if (gate === undefined || gate.cut || gate.closed) return void client.destroy()
      const upstream = connect({ host: '127.0.0.1', port: targetPort() })
      for (const socket of [client, upstream]) {
        gate.sockets.add(socket)
        socket.on('error', () => {
          client.destroy()
          upstream.destroy()
        })
        socket.on('close', () => {
          gate!.sockets.delete(socket)
          client.destroy()
          upstream.destroy()
        })
      }
      client.pipe(upstream)
      upstream.pipe(client)
    })
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()))
    gate = new TcpGate(server, port)
    return gate
  }

  /** Drops every connection through the gate and refuses new ones. */
  close(): void {
    this.cut = true
    for (const socket of this.sockets) socket.destroy()
  }

  heal(): void {
    this.cut = false
  }

  stop(): void {
    this.closed = true
    this.close()
    this.server.close()
  }
}

export class TestNode {
  process: ChildProcess | undefined
  /** With gates: this node's own paths to etcd and from its followers. */
  etcdGate: TcpGate | undefined
  replicationGate: TcpGate | undefined
  replicationPort = 0
  starts = 0
  /** Set while the test keeps it down on purpose (no restart). */
  held = false

  constructor(
    readonly id: string,
    readonly port: number,
    readonly dataDir: string,
    readonly logFile: string,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  get pid(): number | undefined {
    return this.process?.exitCode === null && this.process.signalCode === null ? this.process.pid : undefined
  }

  async status(): Promise<NodeStatus | undefined> {
    try {
      const response = await fetch(`${this.url}/statusz`, { signal: AbortSignal.timeout(500) })
      return response.ok ? ((await response.json()) as NodeStatus) : undefined
    } catch {
      return undefined
    }
  }
}

export interface ClusterOptions {
  readonly replicas?: number
  readonly proxy?: boolean
  readonly leaseTtlMs?: number
  /** Delay before a node that exited is started again (a service manager's RestartSec). */
  readonly restartMs?: number
  readonly args?: readonly string[]
  /** Use this etcd rather than starting one (the test then owns it). */
  readonly etcd?: EtcdProcess
  /** Each node reaches etcd, and is reached by followers, through gates the test can cut. */
  readonly gates?: boolean
}

export function haproxyAvailable(): boolean {
  const available = spawnSync('haproxy', ['-v']).status === 0
  if (!available && process.env.RINGSTREAM_REQUIRE_HAPROXY === '1') throw new Error('RINGSTREAM_REQUIRE_HAPROXY=1 but haproxy is missing (Debian: apt-get install haproxy)')
  return available
}

/** etcd is here (Debian's etcd-server); with RINGSTREAM_REQUIRE_ETCD=1 (CI) its absence fails. */
export function replicationTestable(): boolean {
  const available = etcdAvailable()
  if (!available && process.env.RINGSTREAM_REQUIRE_ETCD === '1') throw new Error('RINGSTREAM_REQUIRE_ETCD=1 but /usr/bin/etcd is missing (Debian: apt-get install etcd-server)')
  return available
}

export class TestCluster {
  readonly nodes: TestNode[] = []
  proxyUrl: string | undefined
  private haproxy: ChildProcess | undefined
  private stopping = false
  private readonly ownEtcd: boolean

  private constructor(
    readonly dir: string,
    readonly etcd: EtcdProcess,
    private readonly options: ClusterOptions,
  ) {
    this.ownEtcd = options.etcd === undefined
  }

  static async start(options: ClusterOptions = {}): Promise<TestCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'ringstream-shard-'))
    const etcd = options.etcd ?? (await startEtcd())
    const cluster = new TestCluster(dir, etcd, options)
    const replicas = options.replicas ?? 3
    for (let i = 1; i <= replicas; i++) {
      const port = await freePortBelowEphemeral()
      const node = new TestNode(`n${i}`, port, join(dir, `n${i}`), join(dir, `n${i}.log`))
      if (options.gates === true) {
        node.replicationPort = await freePortBelowEphemeral()
        node.etcdGate = await TcpGate.open(() => Number(new URL(etcd.url).port))
        node.replicationGate = await TcpGate.open(() => node.replicationPort)
      }
      cluster.nodes.push(node)
    }
    if (options.proxy === true) await cluster.startProxy()
    for (const node of cluster.nodes) cluster.launch(node)
    return cluster
  }

  private get adminSocket(): string {
    return join(this.dir, 'haproxy.sock')
  }

  private async startProxy(): Promise<void> {
    const port = await freePortBelowEphemeral()
    const config = join(this.dir, 'haproxy.cfg')
    writeFileSync(
      config,
      [
        'global',
        `  stats socket ${this.adminSocket} mode 600 level admin`,
        'defaults',
        '  mode http',
        '  timeout connect 1s',
        '  timeout client 75s',
        '  timeout server 75s',
        '  retries 1',
        'frontend streams',
        `  bind 127.0.0.1:${port}`,
        '  default_backend nodes',
        'backend nodes',
        '  balance uri path-only',
        '  hash-type consistent',
        `  server shard-1 127.0.0.1:${this.nodes[0]!.port}`,
        '',
      ].join('\n'),
    )
    const log = openSync(join(this.dir, 'haproxy.log'), 'a')
    this.haproxy = spawn('haproxy', ['-db', '-f', config], { stdio: ['ignore', log, log] })
    closeSync(log)
    this.proxyUrl = `http://127.0.0.1:${port}`
    // Listening is enough (its server may not be up yet: HAProxy retries those itself).
    for (let i = 0; i < 100; i++) {
      const open = await new Promise<boolean>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port }, () => {
          socket.destroy()
          resolve(true)
        })
        socket.on('error', () => resolve(false))
      })
      if (open) return
      await sleep(50)
    }
    throw new Error(`haproxy did not start (see ${join(this.dir, 'haproxy.log')})`)
  }

  /** Starts a node, and again whenever it exits (unless held or the cluster stops). */
  launch(node: TestNode): void {
    const args = [BIN, '--port', String(node.port), '--host', '127.0.0.1', '--data-dir', node.dataDir, '--durability', 'fsync']
    const etcdUrl = node.etcdGate === undefined ? this.etcd.url : `http://127.0.0.1:${node.etcdGate.port}`
    if (node.replicationGate !== undefined) args.push('--replication-listen', `127.0.0.1:${node.replicationPort}`, '--replication-advertise', `127.0.0.1:${node.replicationGate.port}`)
    args.push('--etcd', etcdUrl, '--replicas', String(this.options.replicas ?? 3), '--node-id', node.id, '--shard', '1')
    args.push('--lease-ttl-ms', String(this.options.leaseTtlMs ?? 2000), '--node-url', node.url, '--log-level', 'info')
    if (this.proxyUrl !== undefined) args.push('--proxy-admin', this.adminSocket)
    args.push(...(this.options.args ?? []))
    const log = openSync(node.logFile, 'a')
    const child = spawn(process.execPath, args, { stdio: ['ignore', log, log] })
    closeSync(log)
    node.process = child
    node.starts++
    child.once('exit', () => {
      if (this.stopping || node.held || node.process !== child) return
      setTimeout(() => {
        if (!this.stopping && !node.held && node.process === child) this.launch(node)
      }, this.options.restartMs ?? 300)
    })
  }

  /** Sends `signal` to a node; SIGKILL waits for the exit. */
  async signal(node: TestNode, signal: NodeJS.Signals): Promise<void> {
    const child = node.process
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    const exited = signal === 'SIGKILL' || signal === 'SIGTERM' ? once(child, 'exit') : undefined
    child.kill(signal)
    await exited
  }

  /** Stops a node and keeps it down until release(). */
  async hold(node: TestNode): Promise<void> {
    node.held = true
    await this.signal(node, 'SIGKILL')
  }

  release(node: TestNode): void {
    node.held = false
    this.launch(node)
  }

  async statuses(): Promise<Array<NodeStatus | undefined>> {
    return Promise.all(this.nodes.map((node) => node.status()))
  }

  /** Waits until one node leads and serves, with `followers` followers connected. */
  async leader(followers = (this.options.replicas ?? 3) - 1, timeoutMs = 30_000): Promise<TestNode> {
    const deadline = Date.now() + timeoutMs
    let last: Array<NodeStatus | undefined> = []
    while (Date.now() < deadline) {
      last = await this.statuses()
      const leaders = last.filter((status) => status?.role === 'leader' && status.problem === null)
      if (leaders.length === 1 && leaders[0]!.followers.length >= followers) return this.nodes.find((node) => node.id === leaders[0]!.node)!
      await sleep(50)
    }
    throw new Error(`no leader with ${followers} followers within ${timeoutMs} ms: ${JSON.stringify(last)}`)
  }

  /** Waits until every live replica has written and applied exactly what the leader has. */
  async converged(timeoutMs = 30_000): Promise<NodeStatus[]> {
    const deadline = Date.now() + timeoutMs
    let last: Array<NodeStatus | undefined> = []
    while (Date.now() < deadline) {
      last = await this.statuses()
      const all = last.filter((status): status is NodeStatus => status !== undefined)
      const leader = all.find((status) => status.role === 'leader')
      if (all.length === this.nodes.length && leader !== undefined && all.every((status) => status.walLsn === leader.walLsn && status.appliedLsn === leader.walLsn)) return all
      await sleep(100)
    }
    throw new Error(`replicas did not converge within ${timeoutMs} ms: ${JSON.stringify(last)}`)
  }

  async stop(): Promise<void> {
    this.stopping = true
    await Promise.all(this.nodes.map((node) => this.signal(node, 'SIGTERM')))
    if (this.haproxy !== undefined && this.haproxy.exitCode === null && this.haproxy.signalCode === null) {
      const exited = once(this.haproxy, 'exit')
      this.haproxy.kill('SIGTERM')
      await exited
    }
    for (const node of this.nodes) {
      node.etcdGate?.stop()
      node.replicationGate?.stop()
    }
    if (this.ownEtcd) await this.etcd.stop()
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true })
  }
}

/**
 * Starts a shard before the enclosing describe block's tests — its leader serving with every
 * follower connected, and `streams` (path → content type) created on it — hands it to
 * `started`, and stops it after them (KEEP_CLUSTER=1 keeps its directory to look at).
 */
export function useCluster(options: ClusterOptions, streams: Readonly<Record<string, string>>, started: (cluster: TestCluster) => void): void {
  let cluster: TestCluster | undefined
  beforeAll(async () => {
    cluster = await TestCluster.start(options)
    started(cluster)
    const leader = await cluster.leader()
    for (const [path, contentType] of Object.entries(streams)) {
      const created = await fetch(`${leader.url}/v1/stream/${path}`, { method: 'PUT', headers: { 'content-type': contentType } })
      expect(created.status).toBe(201)
    }
  }, 60_000)
  afterAll(async () => {
    await cluster?.stop()
    if (process.env.KEEP_CLUSTER === undefined) cluster?.remove()
  }, 60_000)
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
