#!/usr/bin/env node
/**
 * bench/ref-server.mjs — starts the Node reference server (`@durable-streams/server`,
 * DurableStreamTestServer) as its own process, so bench/run.mjs can pin it to a core and
 * sample its memory like ringstream's.
 *
 *   node bench/ref-server.mjs --port 18001                 # in-memory store
 *   node bench/ref-server.mjs --port 18001 --data-dir DIR  # file-backed store (LMDB + logs)
 *
 * Streams are served at any path; the benchmark uses /v1/stream/<name> for both servers.
 * Prints `reference listening on <url> (<mode>)` once ready.
 */
import { parseArgs } from 'node:util'
import { DurableStreamTestServer } from '@durable-streams/server'

const { values } = parseArgs({
  options: { port: { type: 'string' }, host: { type: 'string' }, 'data-dir': { type: 'string' } },
})
const options = {
  port: Number(values.port ?? 18001),
  host: values.host ?? '127.0.0.1',
  longPollTimeout: 30_000,
}
if (values['data-dir']) options.dataDir = values['data-dir']

const server = new DurableStreamTestServer(options)
const url = await server.start()
console.log(`reference listening on ${url} (${options.dataDir ? 'file' : 'memory'})`)

let stopping = false
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    if (stopping) return
    stopping = true
    server.stop().then(() => process.exit(0), () => process.exit(1))
    setTimeout(() => process.exit(0), 3000).unref()
  })
}
