// cluster/lease.ts — this node's etcd lease, and the deadline it trusts. Every key the
// node holds in etcd (its membership, its vote, a shard's leadership) lives under this
// one lease. The node's own deadline is measured on its monotonic clock from the moment a
// keep-alive was *sent* (etcd measures its TTL from when it *received* it, later), so the
// node always believes its lease ends before etcd does: a leader stops acknowledging
// writes the moment that deadline passes, whatever a late answer says afterwards.

import { type Etcd, EtcdError } from './etcd.js'

export class NodeLease {
  private deadline = 0
  private timer: NodeJS.Timeout | undefined
  private id: string | undefined
  /** Told once when the lease is gone (expired in etcd, or the deadline passed unrenewed). */
  onLost: (reason: string) => void = () => {}
  /** Asked before each renewal: a reason not to renew (a leader whose disk writes stall
   * must let its lease go, or it would hold the shard while acknowledging nothing). */
  holdBack: () => string | undefined = () => undefined

  constructor(
    private readonly etcd: Etcd,
    readonly ttlMs: number,
  ) {}

  /** The lease id, once granted. */
  get leaseId(): string | undefined {
    return this.id
  }

  /** True while the node may act under its lease (monotonic time before the deadline). */
  get valid(): boolean {
    return this.id !== undefined && performance.now() < this.deadline
  }

  /** Milliseconds the lease still has by this node's reckoning. */
  get remainingMs(): number {
    return Math.max(0, this.deadline - performance.now())
  }

  /** Grants a new lease (the previous one, if any, is forgotten) and keeps it alive. */
  async grant(): Promise<string> {
    this.stop()
    const sent = performance.now()
    const { id, ttlSeconds } = await this.etcd.grant(Math.max(1, Math.ceil(this.ttlMs / 1000)))
    this.id = id
    this.deadline = sent + Math.min(this.ttlMs, ttlSeconds * 1000)
    this.schedule()
    return id
  }

  private schedule(): void {
    // Every third of the TTL, as etcd's own clients do: two keep-alives may be lost.
    this.timer = setTimeout(() => void this.renew(), Math.max(50, Math.floor(this.ttlMs / 3)))
    this.timer.unref()
  }

  private async renew(): Promise<void> {
    const id = this.id
    if (id === undefined) return
    const stalled = this.holdBack()
    if (stalled !== undefined) return this.lose(stalled)
    const sent = performance.now()
    try {
      const ttl = await this.etcd.keepAlive(id)
      if (this.id !== id) return
      if (ttl <= 0) return this.lose('the lease expired in etcd')
      // Only a renewal sent before the deadline extends it: a late answer to an early
      // keep-alive cannot revive a lease this node already gave up on.
      if (sent < this.deadline) this.deadline = Math.max(this.deadline, sent + Math.min(this.ttlMs, ttl * 1000))
    } catch (error) {
      if (this.id !== id) return
      if (error instanceof EtcdError && error.code === 5) return this.lose('the lease expired in etcd')
      // etcd unreachable: keep trying until the deadline.
    }
    if (this.id !== id) return
    if (!this.valid) return this.lose(`no keep-alive answered for ${this.ttlMs} ms (etcd unreachable or this process stalled)`)
    this.schedule()
  }

  private lose(reason: string): void {
    this.stop()
    this.onLost(reason)
  }

  /** Stops renewing; the lease runs out in etcd by itself. */
  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    this.id = undefined
    this.deadline = 0
  }

  /** Gives the lease back at once (its keys go now, not at the TTL): a leader stepping down. */
  async revoke(): Promise<void> {
    const id = this.id
    this.stop()
    if (id !== undefined) await this.etcd.revoke(id).catch(() => {})
  }
}
