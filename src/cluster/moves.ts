// cluster/moves.ts — moving streams between nodes while the cluster grows or shrinks
// (docs/scaling.md; `ringstream rebalance` drives it, cluster/rebalance.ts). A node's side:
// - Moving mode (a control record, so a restart keeps it): while the proxy's hash ring
//   changes, a request for a path this node neither holds nor forwards asks the other nodes
//   which holds it (`HEAD …?ringstream-local=1`), records that node and forwards there; only
//   when none does is the path this node's. So a moved path is reachable at every moment and
//   never made on two nodes. A create (PUT) first reserves the path here, and a node asked
//   about a path it is creating says so (409): of two nodes creating the same new path at
//   once (one each side of the ring's change), at least one sees the other's reservation;
//   one that does steps back, waits a random moment and asks again.
// - Moving a stream out (`POST __ds/cluster/move {path, to}`): requests for it wait (here, at
//   the route, and again after a body was read), its in-flight changes settle, its
//   definition, bytes (stored bytes, message-aligned pieces: offsets stay) and final state
//   go to the new node, which writes them as WAL changes; then this node records the new
//   holder (durably), answers its live readers (they reconnect and are forwarded), deletes
//   its copy, and the waiting requests go to the new holder.
// - Taking one in (`POST __ds/cluster/import`): a body of [u32 header length][header JSON]
//   [bytes]; while it is incomplete, requests for the path go to the old holder (which makes
//   them wait).
// - `GET __ds/cluster/streams`: this node's streams as NDJSON {p, t, movable};
//   `HEAD <stream>?ringstream-probe=1`: any node names itself (the proxy picks the node, so
//   this tells the rebalancer a path's owner under the current ring).

import type { Exchange } from '../http/exchange.js'
import { NODE_HEADER } from '../http/context.js'
import { StreamError, badRequest } from '../protocol/errors.js'
import { isReservedPath, validateStreamPath } from '../protocol/path.js'
import type { ControlReceiver, Controls } from '../streams/controls.js'
import type { Engine } from '../streams/engine.js'
import type { Stream } from '../streams/stream.js'
import { type MovedDefinition, type MovedState, appendPiece, createMoved, definitionOf, finishMoved, readPiece, settledState, unmovable } from '../streams/transfer.js'
import { wakeWaiters } from '../streams/waiters.js'
import { log } from '../util/log.js'
import type { ForwardTable } from './forwards.js'

const MOVING_KEY = 'cluster/moving'
/** `movein/<path>` → the node a stream is coming from, until all of it is here: a restart in
 * the middle keeps forwarding its requests there instead of serving a partial copy. */
const INCOMING_PREFIX = 'movein/'
/** Bytes of a stream sent per import request (a JSON message longer than this goes whole). */
const PIECE_BYTES = 1024 * 1024
/** How long asking the other nodes for a path may take. */
const ASK_PEERS_TIMEOUT_MS = 5_000
/** A create that keeps meeting another node's reservation of its path gives up (503) after
 * this many askings, waiting a random 0–CREATE_BACKOFF_MS × attempt between them. */
const CREATE_ATTEMPTS = 20
const CREATE_BACKOFF_MS = 20
/** One import request's limit: a piece (at most one whole message of the largest append,
 * 16 MiB by default, when messages are larger than PIECE_BYTES) and its header (message
 * ends as JSON: at most ~8 bytes for each 2 bytes of a piece). */
const IMPORT_BODY_BYTES_MAX = 64 * 1024 * 1024
const DURABILITIES: ReadonlySet<string> = new Set(['memory', 'buffered', 'fsync'])
const JSON_HEADERS: Array<[string, string]> = [['Content-Type', 'application/json']]

type ImportHeader =
  | { readonly step: 'create'; readonly path: string; readonly from: string; readonly definition: MovedDefinition }
  | { readonly step: 'piece'; readonly path: string; readonly position: number; readonly messageEnds: number[] | undefined }
  | { readonly step: 'finish'; readonly path: string; readonly state: MovedState }
  | { readonly step: 'abort'; readonly path: string }

export interface MovesOptions {
  readonly engine: Engine
  readonly controls: Controls
  readonly forwards: ForwardTable
  /** This node's URL as the others reach it. */
  readonly nodeUrl: () => string
  /** The other shards, each as its replicas' URLs (one each without replication). */
  readonly shards: () => ReadonlyArray<readonly string[]>
  /** Longest stream path in bytes (an imported path is checked like a client's). */
  readonly streamPathBytesMax: number
  /** Largest request body (the server's append limit): taken while a request waits. */
  readonly bodyBytesMax: number
  /** Passes a request to the node holding the path. */
  readonly forward: (x: Exchange, holder: string) => Promise<void>
}

export class Moves implements ControlReceiver {
  private moving = false
  /** Streams being moved out: requests for them wait for this. */
  private readonly frozen = new Map<string, Promise<void>>()
  /** Streams being moved in, by the node they come from. */
  private readonly incoming = new Map<string, string>()
  /** Paths a create here has reserved (moving mode), with how many creates hold each. */
  private readonly creating = new Map<string, number>()

  constructor(private readonly options: MovesOptions) {}

  restore(key: string, value: string | undefined): void {
    if (key === MOVING_KEY) this.moving = value !== undefined
    if (!key.startsWith(INCOMING_PREFIX)) return
    const path = key.slice(INCOMING_PREFIX.length)
    if (value === undefined) this.incoming.delete(path)
    else this.incoming.set(path, value)
  }

  /** Before a stream request is handled: forwards it (or makes it wait) when another node
   * holds the path, is taking it in, or (moving mode) is found to hold it; undefined: this
   * node handles it (`local` runs after an asking of the others found none). */
  route(x: Exchange, path: string, local: () => void | Promise<void>): void | Promise<void> | undefined {
    if (x.method === 'HEAD' && x.query === 'ringstream-probe=1') return answered(x, 204, [[NODE_HEADER, this.options.nodeUrl()]])
    if (x.method === 'HEAD' && x.query === 'ringstream-local=1') {
      // The holder names itself: asked through a follower, the answer is its leader's.
      if (this.holds(path)) return answered(x, 204, [[NODE_HEADER, this.options.nodeUrl()]])
      return answered(x, this.creating.has(path) ? 409 : 404, [])
    }
    const waiting = this.frozen.get(path)
    if (waiting !== undefined) return this.afterMove(x, path, waiting, local)
    const from = this.incoming.get(path)
    if (from !== undefined) return this.options.forward(x, from)
    const holder = this.options.forwards.holderOf(path)
    if (holder !== undefined) return this.options.forward(x, holder)
    if (!this.moving || this.holds(path)) return undefined
    if (x.method === 'PUT' || x.method === 'POST') x.readBody(this.options.bodyBytesMax).catch(() => {})
    if (x.method === 'PUT') return this.createOnce(x, path, local)
    return this.askPeers(path).then(({ holder }) => this.place(x, path, holder, local))
  }

  /** Handles a request after the others were asked: `holder` is the one holding the path. */
  private async place(x: Exchange, path: string, holder: string | undefined, local: () => void | Promise<void>): Promise<void> {
    // Asked again: the stream may have been moved here (or a forward recorded) meanwhile.
    const again = this.options.forwards.holderOf(path) ?? this.incoming.get(path)
    if (again !== undefined) return this.options.forward(x, again)
    if (holder === undefined || this.holds(path)) return local()
    await this.options.forwards.set(path, holder)
    return this.options.forward(x, holder)
  }

  /** A create in moving mode: the path stays reserved here from before the others are asked
   * until the create is done, and a create that finds another node's reservation steps back
   * and asks again. (Both may step back; their random waits part them.) The body is in
   * first, so a slow upload holds no reservation. */
  private async createOnce(x: Exchange, path: string, local: () => void | Promise<void>): Promise<void> {
    await x.readBody(this.options.bodyBytesMax)
    for (let attempt = 1; ; attempt++) {
      if (x.done) return
      this.creating.set(path, (this.creating.get(path) ?? 0) + 1)
      try {
        const { holder, creating } = await this.askPeers(path)
        if (holder !== undefined || !creating) return await this.place(x, path, holder, local)
      } finally {
        const left = this.creating.get(path)! - 1
        if (left === 0) this.creating.delete(path)
        else this.creating.set(path, left)
      }
      if (attempt === CREATE_ATTEMPTS) throw new StreamError('NODE_UNAVAILABLE', `the cluster is moving streams and another node kept creating ${path} too; retry`)
      await new Promise((resolve) => setTimeout(resolve, Math.random() * CREATE_BACKOFF_MS * attempt))
    }
  }

  /** After a write's body was read: a move that began meanwhile sends it to the new holder. */
  movedMeanwhile(x: Exchange, path: string): Promise<void> | undefined {
    const waiting = this.frozen.get(path)
    if (waiting !== undefined) return this.afterMove(x, path, waiting)
    const holder = this.options.forwards.holderOf(path) ?? this.incoming.get(path)
    return holder === undefined ? undefined : this.options.forward(x, holder)
  }

  /** The `__ds/cluster/` routes. */
  admin(x: Exchange, action: string): Promise<void> | void {
    if (action === 'streams' && x.method === 'GET') return this.list(x)
    if (action === 'moving' && x.method === 'PUT') {
      return readJson(x, 1024).then(async (body) => {
        const on = (body as { on?: unknown } | null)?.on
        if (typeof on !== 'boolean') throw badRequest('moving takes {"on": true|false}')
        if (on && this.options.shards().length === 0) throw badRequest('moving mode needs the other nodes: start this node with --cluster-peers')
        await this.options.controls.put(MOVING_KEY, on ? '1' : undefined)
        this.moving = on
        x.send(204, [])
      })
    }
    if (action === 'move' && x.method === 'POST') {
      return readJson(x, 64 * 1024).then(async (body) => {
        const { path, to } = (body ?? {}) as { path?: unknown; to?: unknown }
        if (typeof path !== 'string' || typeof to !== 'string' || !/^https?:\/\/[^/]+$/.test(to)) throw badRequest('move takes {"path": stream path, "to": "http(s)://host:port"}')
        if (to === this.options.nodeUrl()) throw badRequest('a stream is not moved to the node that holds it')
        if (!this.options.shards().some((replicas) => replicas.includes(to))) throw badRequest(`${to} is not one of this node's --cluster-peers`)
        const moved = await this.moveOut(path, to)
        x.send(200, JSON_HEADERS, JSON.stringify(moved))
      })
    }
    if (action === 'import' && x.method === 'POST') return this.importPart(x)
    throw new StreamError('NOT_FOUND', `no cluster route ${x.method} ${action}`)
  }

  /** This node writes `path` itself now: held here and not moving out. */
  servesHere(path: string): boolean {
    return this.holds(path) && !this.frozen.has(path)
  }

  /** This node serves `path` itself: a live stream, not coming in, not forwarded elsewhere
   * (a copy left by a move that broke off after the new holder had it all is not served). */
  private holds(path: string): boolean {
    const stream = this.options.engine.registry.find(path)
    return stream !== undefined && !stream.softDeleted && stream.deletion === undefined && !this.incoming.has(path) && this.options.forwards.holderOf(path) === undefined
  }

  private async afterMove(x: Exchange, path: string, waiting: Promise<void>, local?: () => void | Promise<void>): Promise<void> {
    if (x.method === 'PUT' || x.method === 'POST') x.readBody(this.options.bodyBytesMax).catch(() => {})
    await waiting
    const holder = this.options.forwards.holderOf(path)
    if (holder !== undefined) return this.options.forward(x, holder)
    // The move failed: the stream is still here.
    if (local !== undefined) return local()
    throw new StreamError('NODE_UNAVAILABLE', `moving ${path} failed while this request waited; retry`)
  }

  /** The node among the others that holds `path`, and whether one is creating it: every
   * other shard asked at once, each at its replicas in turn until one answers. */
  private async askPeers(path: string): Promise<{ holder: string | undefined; creating: boolean }> {
    const encoded = path.split('/').map(encodeURIComponent).join('/')
    const answers = await Promise.all(this.options.shards().map((replicas) => askShard(replicas, `/v1/stream/${encoded}?ringstream-local=1`, path)))
    return { holder: answers.find((answer) => answer.holder !== undefined)?.holder, creating: answers.some((answer) => answer.status === 409) }
  }

  private list(x: Exchange): void {
    x.startStream(200, [['Content-Type', 'application/x-ndjson']])
    let lines = ''
    this.options.engine.registry.forEachLive(
      () => true,
      (stream) => {
        if (!this.holds(stream.path)) return true
        lines += `${JSON.stringify({ p: stream.path, t: stream.tail, movable: unmovable(stream) === undefined })}\n`
        if (lines.length >= 64 * 1024) {
          x.write(Buffer.from(lines))
          lines = ''
        }
        return true
      },
    )
    if (lines.length > 0) x.write(Buffer.from(lines))
    x.endStream()
  }

  /** Moves `path` to `to`; resolves with what it cost. */
  async moveOut(path: string, to: string): Promise<{ bytes: number; pauseMs: number }> {
    const { engine, forwards } = this.options
    const stream = engine.registry.find(path)
    if (stream === undefined || !this.holds(path)) throw new StreamError('NOT_FOUND', `${path} is not held here`)
    const why = unmovable(stream)
    if (why !== undefined) throw new StreamError('CONFIG_MISMATCH', `${path} is not moved: ${why}`)
    if (this.frozen.has(path)) throw new StreamError('CONFIG_MISMATCH', `${path} is being moved already`)
    let release: () => void = () => {}
    this.frozen.set(path, new Promise<void>((resolve) => (release = resolve)))
    // Kept in memory while it moves (an idle stream may otherwise be evicted mid-copy).
    stream.pins++
    const started = performance.now()
    let bytes = 0
    try {
      const state = await settledState(stream)
      await sendPart(to, { step: 'create', path, from: this.options.nodeUrl(), definition: definitionOf(stream) })
      try {
        for (let at = 0; at < state.tail; ) {
          const piece = await readPiece(engine, stream, at, PIECE_BYTES)
          await sendPart(to, { step: 'piece', path, position: piece.position, messageEnds: piece.messageEnds === undefined ? undefined : [...piece.messageEnds] }, piece.bytes)
          at += piece.bytes.length
          bytes += piece.bytes.length
        }
        // Deleted or expired while it was copied (a DELETE authorized late, a TTL): not moved.
        if (engine.registry.find(path) !== stream || stream.deletion !== undefined || stream.softDeleted) throw new StreamError('NOT_FOUND', `${path} was deleted while it was being moved`)
        await sendPart(to, { step: 'finish', path, state: { ...state, lastAccessMs: stream.lastAccessMs } })
      } catch (error) {
        await sendPart(to, { step: 'abort', path }).catch(() => {})
        throw error
      }
      // The new holder first (durably), then this copy goes: a crash between leaves a
      // forward to a complete stream and a copy nobody reaches.
      await forwards.set(path, to)
      wakeWaiters(stream)
      await engine.delete(path)
      const pauseMs = performance.now() - started
      log.info({ stream: path, to, bytes, pauseMs: Math.round(pauseMs) }, `ringstream: moved ${path} to ${to} (${bytes} bytes, paused ${Math.round(pauseMs)} ms)`)
      return { bytes, pauseMs }
    } finally {
      stream.pins--
      this.frozen.delete(path)
      release()
    }
  }

  private async importPart(x: Exchange): Promise<void> {
    const body = await x.readBody(IMPORT_BODY_BYTES_MAX)
    if (body.length < 4) throw badRequest('an import part starts with its header length')
    const headerBytes = body.readUInt32BE(0)
    if (4 + headerBytes > body.length) throw badRequest('an import part is shorter than its header')
    let header: ImportHeader
    try {
      header = JSON.parse(body.subarray(4, 4 + headerBytes).toString('utf8')) as ImportHeader
    } catch {
      throw badRequest('an import part\'s header is not JSON')
    }
    const bytes = body.subarray(4 + headerBytes)
    const { engine, forwards } = this.options
    checkImport(header, bytes.length, this.options.streamPathBytesMax)
    const path = header.path
    switch (header.step) {
      case 'create':
        if (engine.registry.find(path) !== undefined) {
          // Held here already (not a broken-off move of it): refused before anything is recorded.
          if (!this.incoming.has(path)) throw new StreamError('CONFIG_MISMATCH', `${path} exists here already: it is not moved over it`)
          // A move of this path that broke off before (its node restarted): start over.
          await engine.delete(path)
        }
        await this.options.controls.put(`${INCOMING_PREFIX}${path}`, header.from)
        this.incoming.set(path, header.from)
        await createMoved(engine, path, header.definition)
        break
      case 'piece':
        if (bytes.length > 0) await this.incomingStream(path).then((stream) => appendPiece(engine, stream, { position: header.position, bytes, messageEnds: header.messageEnds }))
        break
      case 'finish': {
        await finishMoved(engine, await this.incomingStream(path), header.state)
        // Held here from now on: no forward (to the old holder) may shadow it.
        await forwards.clear(path)
        await this.endIncoming(path)
        break
      }
      case 'abort':
        if (!this.incoming.has(path)) break
        if (engine.registry.find(path) !== undefined) await engine.delete(path)
        await this.endIncoming(path)
        break
      default:
        throw badRequest('an import part\'s step is create, piece, finish or abort')
    }
    x.send(204, [])
  }

  private async endIncoming(path: string): Promise<void> {
    await this.options.controls.put(`${INCOMING_PREFIX}${path}`, undefined)
    this.incoming.delete(path)
  }

  private incomingStream(path: string): Promise<Stream> {
    const stream = this.options.engine.registry.find(path)
    if (stream === undefined || !this.incoming.has(path)) return Promise.reject(new StreamError('NOT_FOUND', `${path} is not being moved here`))
    return Promise.resolve(stream)
  }
}

/** 400 unless `header` is an import part as moveOut sends them. */
function checkImport(header: ImportHeader, bytes: number, pathBytesMax: number): void {
  if (typeof header !== 'object' || header === null || typeof header.path !== 'string') throw badRequest('an import part names its stream')
  validateStreamPath(header.path, pathBytesMax)
  if (isReservedPath(header.path)) throw badRequest('a reserved path is not imported')
  const integer = (value: unknown): boolean => Number.isSafeInteger(value) && (value as number) >= 0
  switch (header.step) {
    case 'create': {
      const d = header.definition
      if (typeof header.from !== 'string' || typeof d !== 'object' || d === null) throw badRequest('a create part has its source node and definition')
      if (typeof d.contentType !== 'string' || typeof d.requestKey !== 'string' || !DURABILITIES.has(d.durability)) throw badRequest('a moved stream\'s definition is malformed')
      if ((d.ttlSeconds !== undefined && d.ttlSeconds !== null && !integer(d.ttlSeconds)) || (d.expiresAtMs !== undefined && d.expiresAtMs !== null && !integer(d.expiresAtMs))) throw badRequest('a moved stream\'s expiry is malformed')
      return
    }
    case 'piece': {
      if (!integer(header.position)) throw badRequest('a piece has its position')
      const ends = header.messageEnds
      if (ends === undefined || ends === null) return
      if (!Array.isArray(ends)) throw badRequest('a piece\'s message ends are a list')
      let previous = 0
      for (const end of ends) {
        if (!integer(end) || end <= previous || end > bytes) throw badRequest('a piece\'s message ends rise within its bytes')
        previous = end
      }
      return
    }
    case 'finish': {
      const st = header.state
      if (typeof st !== 'object' || st === null || !integer(st.tail) || typeof st.closed !== 'boolean' || !Array.isArray(st.producers)) throw badRequest('a finish part has the stream\'s final state')
      for (const producer of st.producers) {
        if (!Array.isArray(producer) || typeof producer[0] !== 'string' || !integer(producer[1]) || !integer(producer[2])) throw badRequest('a producer is [id, epoch, seq]')
      }
      return
    }
    case 'abort':
      return
    default:
      throw badRequest('an import part\'s step is create, piece, finish or abort')
  }
}

/** A shard's answer to `HEAD url` (204 holds, 404 not, 409 creating), from the first of its
 * replicas that gives one; unsure is not "nobody" (making the path here could make it on two
 * nodes), so none answering is a 503. */
async function askShard(replicas: readonly string[], url: string, path: string): Promise<{ status: number; holder: string | undefined }> {
  const problems: string[] = []
  for (const replica of replicas) {
    try {
      const res = await fetch(`${replica}${url}`, { method: 'HEAD', signal: AbortSignal.timeout(ASK_PEERS_TIMEOUT_MS) })
      if (res.status === 204) return { status: 204, holder: res.headers.get(NODE_HEADER) ?? replica }
      if (res.status === 404 || res.status === 409) return { status: res.status, holder: undefined }
      problems.push(`${replica} answered ${res.status}`)
    } catch (error) {
      problems.push(`${replica}: ${(error as Error).message}`)
    }
  }
  throw new StreamError('NODE_UNAVAILABLE', `the cluster is moving streams and no node of a shard can say whether it holds ${path}: ${problems.join('; ')}`)
}

/** A request answered on the spot (route's "handled", as a settled promise). */
function answered(x: Exchange, status: number, headers: Array<[string, string]>): Promise<void> {
  x.send(status, headers)
  return Promise.resolve()
}

async function sendPart(to: string, header: ImportHeader, bytes?: Uint8Array): Promise<void> {
  const head = Buffer.from(JSON.stringify(header))
  const length = Buffer.alloc(4)
  length.writeUInt32BE(head.length)
  const body = Buffer.concat(bytes === undefined ? [length, head] : [length, head, bytes])
  const res = await fetch(`${to}/v1/stream/__ds/cluster/import`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body, signal: AbortSignal.timeout(30_000) })
  const text = await res.text()
  if (res.status !== 204) throw new StreamError('NODE_UNAVAILABLE', `${to} refused the ${header.step} of ${header.path}: ${res.status} ${text.slice(0, 300)}`)
}

function readJson(x: Exchange, bytesMax: number): Promise<unknown> {
  return x.readBody(bytesMax).then((bytes) => {
    try {
      return JSON.parse(bytes.toString('utf8')) as unknown
    } catch {
      throw badRequest('request body is not valid JSON')
    }
  })
}
