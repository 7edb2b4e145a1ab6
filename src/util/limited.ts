// util/limited.ts — running an async action over a list with at most `limit` in flight.

/** Calls `action` for every item, at most `limit` at a time; resolves when all are done. */
export async function forEachLimited<T>(items: readonly T[], limit: number, action: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) await action(items[next++]!)
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}
