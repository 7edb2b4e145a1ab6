// subscriptions/remote.ts — what a subscription needs from the rest of a cluster, as the
// manager sees it (cluster/stream-follow.ts implements it): the streams matching a
// subscription on the other nodes (each node's streams, listed and then watched), and
// appending a pull-wake event to a wake stream another node holds. The manager keeps the
// cursors (durable, replicated with its own node's WAL); the tails reported here are not
// stored: every (re)connection lists them again.

/** What a subscription follows: its pattern and its explicit streams. */
export interface Interest {
  readonly pattern: string | undefined
  readonly streams: readonly string[]
}

/** Told what the other nodes hold; `source` numbers the other node (its shard). */
export interface RemoteSink {
  /** A matching stream exists with this tail. `initial`: reported while the subscription
   * is being made (its links start at this tail, as local ones do). */
  tail(source: number, path: string, streamId: number, tail: number, initial: boolean): void
  /** The stream was deleted or expired. */
  gone(source: number, path: string, streamId: number): void
  /** `source` has listed every matching stream it holds: the others it reported before are gone. */
  synced(source: number, listed: ReadonlySet<string>): void
  /** Every other node has listed once since following started: a remote link no node
   * reported has no stream (it was deleted while nobody watched). */
  allSynced(): void
}

export interface RemoteStreams {
  /** Follows `interest` on every other node, reporting to `sink` until unfollow (again
   * after every lost connection). Resolves once every other node listed it, or after a
   * bound when one cannot be reached (it is listed when it can). */
  follow(id: string, interest: Interest, sink: RemoteSink, initial: boolean): Promise<void>
  unfollow(id: string): void
  /** Appends to a stream this node does not hold, through the cluster's proxy. */
  append(path: string, contentType: string, body: string): Promise<void>
  /** Whether this node writes `path` itself now: false when another node holds it, and
   * while it moves out or in (the server's own writes then go through the proxy, which
   * holds them until the move is done). */
  servesHere(path: string): boolean
}
