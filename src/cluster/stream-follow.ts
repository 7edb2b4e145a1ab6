// cluster/stream-follow.ts — the following side of cluster-wide subscriptions: a
// subscription lives on the node the proxy sends its id to, and that node follows the
// subscription's streams on every other node (shard) with one watch each
// (cluster/stream-watch.ts serves them). A lost connection is made again, to the next of
// the shard's replicas, after a short pause; each connection lists the matching streams
// again, so nothing changed meanwhile is missed (the manager compares tails with its
// durable cursors). No polling: one long request per subscription and other shard.

import type { Interest, RemoteSink, RemoteStreams } from '../subscriptions/remote.js'
import { log } from '../util/log.js'

/** How long making or changing a subscription waits for the other shards' lists. */
const FOLLOW_READY_MS = 5_000
/** Pauses between attempts to watch a shard: the first, then doubling up to the last. */
const RECONNECT_MS_MIN = 100
const RECONNECT_MS_MAX = 2_000
/** A shard that refuses the watch (4xx: authentication on, an older node) is asked again
 * this much later: it will not change its mind in a second. */
const REFUSED_RETRY_MS = 30_000
/** A watch sends a blank line every 10 s: silence for this long is a dead connection. */
const WATCH_SILENCE_MS = 30_000
/** A wake event appended through the proxy: attempts, and the pause between them. */
const APPEND_ATTEMPTS = 5
const APPEND_RETRY_MS = 200

export interface StreamFollowOptions {
  /** The other shards, each as its replicas' URLs (any one answers, a follower through
   * its leader); asked when following starts (this node's URL is known once it listens). */
  readonly shards: () => ReadonlyArray<readonly string[]>
  /** The proxy every stream is reachable through. */
  readonly clusterUrl: string
  /** Whether this node writes `path` itself now (cluster/moves.ts). */
  readonly servesHere: (path: string) => boolean
}

interface Following {
  readonly aborted: AbortController
}

export class StreamFollow implements RemoteStreams {
  private readonly following = new Map<string, Following>()

  constructor(private readonly options: StreamFollowOptions) {}

  get size(): number {
    return this.following.size
  }

  servesHere(path: string): boolean {
    return this.options.servesHere(path)
  }

  follow(id: string, interest: Interest, sink: RemoteSink, initial: boolean): Promise<void> {
    this.unfollow(id)
    const following: Following = { aborted: new AbortController() }
    this.following.set(id, following)
    const shards = this.options.shards()
    let unsynced = shards.length
    let announce: () => void = () => {}
    const ready = new Promise<void>((resolve) => (announce = resolve))
    const onFirstSync = (): void => {
      if (--unsynced > 0) return
      announce()
      sink.allSynced()
    }
    if (shards.length === 0) return Promise.resolve()
    shards.forEach((urls, source) => void this.watch(id, source, urls, interest, sink, initial, following, onFirstSync))
    const bound = new Promise<void>((resolve) => setTimeout(resolve, FOLLOW_READY_MS).unref())
    return Promise.race([ready, bound])
  }

  unfollow(id: string): void {
    this.following.get(id)?.aborted.abort()
    this.following.delete(id)
  }

  async append(path: string, contentType: string, body: string): Promise<void> {
    const url = `${this.options.clusterUrl}/v1/stream/${path.split('/').map(encodeURIComponent).join('/')}`
    let problem = ''
    for (let attempt = 0; attempt < APPEND_ATTEMPTS; attempt++) {
      if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, APPEND_RETRY_MS))
      try {
        const res = await fetch(url, { method: 'POST', headers: { 'content-type': contentType }, body, signal: AbortSignal.timeout(5_000) })
        await res.arrayBuffer()
        if (res.ok) return
        problem = `${res.status}`
        // Only the node being away is worth another attempt.
        if (res.status !== 503 && res.status !== 502 && res.status !== 504) break
      } catch (error) {
        problem = (error as Error).message
      }
    }
    throw new Error(`appending to ${path} through ${this.options.clusterUrl} failed: ${problem}`)
  }

  /** Watches one shard until unfollowed, reconnecting (to its next replica) when cut off. */
  private async watch(id: string, source: number, urls: readonly string[], interest: Interest, sink: RemoteSink, initial: boolean, following: Following, onFirstSync: () => void): Promise<void> {
    const { signal } = following.aborted
    let synced = false
    let pause = RECONNECT_MS_MIN
    for (let attempt = 0; !signal.aborted; attempt++) {
      const url = urls[attempt % urls.length]!
      let refused = false
      try {
        const listed = new Set<string>()
        let listing = true
        for await (const line of watchLines(url, interest, signal)) {
          if (line.synced === true) {
            sink.synced(source, listed)
            listed.clear()
            listing = false
            pause = RECONNECT_MS_MIN
            if (!synced) {
              synced = true
              onFirstSync()
            }
          } else if (line.gone === true) {
            sink.gone(source, line.p!, line.i!)
          } else {
            if (listing) listed.add(line.p!)
            sink.tail(source, line.p!, line.i!, line.t!, initial && !synced && listing)
          }
        }
      } catch (error) {
        if (signal.aborted) return
        if (error instanceof WatchRefused) {
          log.warn({ subscription: id, node: url }, `ringstream: subscription ${id}: ${url} refused to be watched (${error.message}); its streams are not followed until it accepts (asked again in ${REFUSED_RETRY_MS / 1000} s)`)
          refused = true
        } else {
          log.debug({ subscription: id, node: url, err: error }, `ringstream: subscription ${id}: watching ${url} failed: ${(error as Error).message}`)
        }
      }
      if (signal.aborted) return
      await new Promise((resolve) => setTimeout(resolve, refused ? REFUSED_RETRY_MS : pause))
      pause = Math.min(RECONNECT_MS_MAX, pause * 2)
    }
  }
}

interface WatchLine {
  readonly p?: string
  readonly i?: number
  readonly t?: number
  readonly gone?: boolean
  readonly synced?: boolean
}

/** The watch's lines as they arrive; ends when the connection does. */
async function* watchLines(url: string, interest: Interest, signal: AbortSignal): AsyncGenerator<WatchLine> {
  const silence = new AbortController()
  let timer = setTimeout(() => silence.abort(), WATCH_SILENCE_MS)
  const both = AbortSignal.any([signal, silence.signal])
  try {
    const res = await fetch(`${url}/v1/stream/__ds/watch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(interest), signal: both })
    if (!res.ok || res.body === null) {
      await res.arrayBuffer().catch(() => {})
      if (res.status >= 400 && res.status < 500) throw new WatchRefused(`it answered ${res.status}`)
      throw new Error(`watch answered ${res.status}`)
    }
    const decoder = new TextDecoder()
    let rest = ''
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      clearTimeout(timer)
      timer = setTimeout(() => silence.abort(), WATCH_SILENCE_MS)
      rest += decoder.decode(chunk, { stream: true })
      let start = 0
      for (let newline = rest.indexOf('\n'); newline >= 0; newline = rest.indexOf('\n', start)) {
        const text = rest.slice(start, newline)
        start = newline + 1
        if (text.length > 0) yield checkLine(JSON.parse(text) as WatchLine)
      }
      rest = rest.slice(start)
    }
  } finally {
    clearTimeout(timer)
  }
}

class WatchRefused extends Error {}

/** A line as the watch protocol has it, or a thrown error (the connection is made again). */
function checkLine(line: WatchLine): WatchLine {
  if (line.synced === true) return line
  const stream = typeof line.p === 'string' && Number.isSafeInteger(line.i)
  if (stream && (line.gone === true || Number.isSafeInteger(line.t))) return line
  throw new Error(`a watch line is not {p, i, t} or {p, i, gone}: ${JSON.stringify(line).slice(0, 200)}`)
}

/** `--cluster-peers`: shards separated by commas, a shard's replicas by `|`; the shard
 * holding `self` is left out (this node's own streams are its own). Throws unless exactly
 * one shard holds `self`: a node that watched itself, or missed a shard, would be wrong quietly. */
export function otherShards(peers: string, self: string): string[][] {
  const shards = peers
    .split(',')
    .map((shard) => shard.split('|').map((url) => url.trim().replace(/\/+$/, '')).filter((url) => url.length > 0))
    .filter((shard) => shard.length > 0)
  const own = shards.filter((shard) => shard.includes(self.replace(/\/+$/, '')))
  if (own.length !== 1) throw new Error(`--cluster-peers must name this node (${self}) in exactly one shard; it does in ${own.length}`)
  return shards.filter((shard) => shard !== own[0])
}
