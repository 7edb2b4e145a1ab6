// bench/state-load/client.mjs — one cold load of a State Protocol stream with
// @durable-streams/state's StreamDB, as its README shows, in a fresh process (run by
// bench/state-load.mjs on the client core). Prints one JSON line:
// {"ms", "rows", "requests", "error"?}.
//
//   node bench/state-load/client.mjs URL LIVE TIMEOUT_MS      LIVE: false | long-poll | sse

import { createStateSchema } from '@durable-streams/state'
import { createStreamDB } from '@durable-streams/state/db'
import { countingFetch } from '../lib/client-bench.mjs'

const [url, liveArg, timeoutArg] = process.argv.slice(2)
const live = liveArg === 'false' ? false : liveArg
const timeoutMs = Number(timeoutArg ?? 120_000)
const accept = { '~standard': { version: 1, vendor: 'bench', validate: (value) => ({ value }) } }
const schema = createStateSchema({ rows: { schema: accept, type: 'row', primaryKey: 'id' } })

const { counts, fetch: counting } = countingFetch()

const started = performance.now()
const db = createStreamDB({ streamOptions: { url, contentType: 'application/json', fetch: counting }, live, state: schema })
let timer
// Not unref'd: a preload that waits on nothing would otherwise let the process exit silently.
const timeout = new Promise((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)))
let error
try {
  const outcome = await Promise.race([db.preload().then(() => 'loaded'), timeout])
  if (outcome === 'timeout') error = `preload() did not finish within ${timeoutMs} ms`
} catch (e) {
  error = e.message
}
clearTimeout(timer)
const ms = performance.now() - started
console.log(JSON.stringify({ ms: Math.round(ms), rows: db.collections.rows.size, requests: counts.requests, ...(error === undefined ? {} : { error }) }))
db.close()
process.exit(0)
