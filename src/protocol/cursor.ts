// protocol/cursor.ts — Stream-Cursor values for CDN collapsing (PROTOCOL §8.1).
// A cursor is the number of 20 s intervals since 2024-10-09T00:00:00Z. When a client echoes
// a cursor at or ahead of the current interval, we answer strictly greater (plus 1–3600 s
// of jitter) so cached responses never cycle.

const CURSOR_EPOCH_MS = Date.UTC(2024, 9, 9)
const CURSOR_INTERVAL_MS = 20_000
const JITTER_SECONDS_MAX = 3600
const CURSOR_PATTERN = /^\d{1,15}$/

export function currentInterval(nowMs: number): number {
  return Math.floor((nowMs - CURSOR_EPOCH_MS) / CURSOR_INTERVAL_MS)
}

/** `random` is injected (Math.random in production) so tests can pin the jitter. */
export function nextCursor(nowMs: number, clientCursor: string | undefined, random: () => number): string {
  const interval = currentInterval(nowMs)
  if (clientCursor === undefined || !CURSOR_PATTERN.test(clientCursor)) return String(interval)
  const echoed = Number(clientCursor)
  if (echoed < interval) return String(interval)
  const jitterSeconds = 1 + Math.floor(random() * JITTER_SECONDS_MAX)
  const jitterIntervals = Math.max(1, Math.ceil((jitterSeconds * 1000) / CURSOR_INTERVAL_MS))
  return String(echoed + jitterIntervals)
}
