#!/usr/bin/env node
/**
 * bench/null-server.mjs — the control of bench/run.mjs: a uWebSockets.js server that does no
 * work. Every request's body is read to the end, then the answer is 204 No Content. Its
 * appends/s under the write load is the ceiling of "uWS + one JS callback per request" on one
 * core, and the ceiling of the load generator.
 *
 *   node bench/null-server.mjs --port 18000
 *
 * Prints `null-server listening on http://127.0.0.1:<port>/ (<uws module>)` once ready.
 * Loads uWS with bench/lib/uws.mjs.
 */
import { parseArgs } from 'node:util'
import { loadUws } from './lib/uws.mjs'

const { values } = parseArgs({ options: { port: { type: 'string' }, host: { type: 'string' } } })
const port = Number(values.port ?? 18000)
const host = values.host ?? '127.0.0.1'

const { uws, name } = await loadUws()
const app = uws.App()

app.any('/*', (res) => {
  let aborted = false
  res.onAborted(() => {
    aborted = true
  })
  res.onData((_chunk, isLast) => {
    if (isLast && !aborted) {
      res.cork(() => {
        res.writeStatus('204 No Content').endWithoutBody()
      })
    }
  })
})

app.listen(host, port, (socket) => {
  if (!socket) {
    console.error(`null-server: cannot listen on ${host}:${port}`)
    process.exit(1)
  }
  const actual = typeof uws.us_socket_local_port === 'function' ? uws.us_socket_local_port(socket) : port
  console.log(`null-server listening on http://${host}:${actual}/ (${name})`)
})

for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0))
