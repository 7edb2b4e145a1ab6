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
 * Served by bench/lib/uws.mjs.
 */
import { serveBench } from './lib/uws.mjs'

await serveBench('null-server', (app) => {
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
})
