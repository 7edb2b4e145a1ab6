// subscriptions/directory.ts — the subscriptions a server holds, and which of them an
// append to a path can concern: those linking the path explicitly, and glob ones by their
// pattern's literal first segment (or any, for patterns starting with a wildcard), so an
// append looks at the few that can match it, not at every subscription.

import type { Link, Subscription } from './model.js'

export class SubscriptionDirectory {
  private readonly subs = new Map<string, Subscription>()
  private readonly byExplicit = new Map<string, Set<Subscription>>()
  private readonly byPrefix = new Map<string, Set<Subscription>>()
  private readonly anyPrefix = new Set<Subscription>()

  get size(): number {
    return this.subs.size
  }

  get(id: string): Subscription | undefined {
    return this.subs.get(id)
  }

  values(): IterableIterator<Subscription> {
    return this.subs.values()
  }

  /** `sub` is the one held under its id (not deleted, not replaced). */
  holds(sub: Subscription): boolean {
    return this.subs.get(sub.id) === sub
  }

  add(sub: Subscription): void {
    this.subs.set(sub.id, sub)
    const glob = sub.glob
    if (glob === undefined) return
    if (glob.firstSegment === undefined) this.anyPrefix.add(sub)
    else {
      let set = this.byPrefix.get(glob.firstSegment)
      if (set === undefined) this.byPrefix.set(glob.firstSegment, (set = new Set()))
      set.add(sub)
    }
  }

  remove(sub: Subscription): void {
    if (!this.holds(sub)) return
    this.subs.delete(sub.id)
    this.anyPrefix.delete(sub)
    const first = sub.glob?.firstSegment
    if (first !== undefined) {
      const set = this.byPrefix.get(first)
      set?.delete(sub)
      if (set?.size === 0) this.byPrefix.delete(first)
    }
    for (const link of sub.links.values()) if (link.explicit) this.dropExplicit(sub, link.path)
  }

  /** Sets (or replaces) the subscription's link for its path. */
  link(sub: Subscription, link: Link): void {
    const previous = sub.links.get(link.path)
    if (previous !== undefined && previous !== link && previous.explicit && !link.explicit) this.dropExplicit(sub, link.path)
    sub.links.set(link.path, link)
    if (link.explicit) {
      let set = this.byExplicit.get(link.path)
      if (set === undefined) this.byExplicit.set(link.path, (set = new Set()))
      set.add(sub)
    }
  }

  unlink(sub: Subscription, path: string): void {
    const link = sub.links.get(path)
    if (link === undefined) return
    sub.links.delete(path)
    sub.pending.delete(path)
    if (link.explicit) this.dropExplicit(sub, path)
  }

  /** The link stays (a glob still matches it) but is no longer explicit. */
  dropExplicit(sub: Subscription, path: string): void {
    const set = this.byExplicit.get(path)
    set?.delete(sub)
    if (set?.size === 0) this.byExplicit.delete(path)
  }

  /** The subscriptions a change to `path` may concern, each once. */
  *candidates(path: string): Iterable<Subscription> {
    const explicit = this.byExplicit.get(path)
    if (explicit !== undefined) yield* explicit
    const slash = path.indexOf('/')
    const prefixed = this.byPrefix.get(slash < 0 ? path : path.slice(0, slash))
    if (prefixed !== undefined) for (const sub of prefixed) if (explicit === undefined || !explicit.has(sub)) yield sub
    for (const sub of this.anyPrefix) if (explicit === undefined || !explicit.has(sub)) yield sub
  }
}
