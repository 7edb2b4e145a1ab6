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
 * Loads uWS the way src/http/uws.ts does: `uws-pack` on Node <= 22, `@uwsjs/linux-x64-<major>`
 * on newer Node.
 */
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'

const { values } = parseArgs({ options: { port: { type: 'string' }, host: { type: 'string' } } })
const port = Number(values.port ?? 18000)
const host = values.host ?? '127.0.0.1'

async function loadUws() {
  const major = Number(process.versions.node.split('.')[0])
  const require = createRequire(import.meta.url)
  const platformName = `@uwsjs/${process.platform}-${process.arch}-${major}`
  const tries = major >= 23
    ? [[platformName, async () => require(platformName)], ['uws-pack', async () => import('uws-pack')]]
    : [['uws-pack', async () => import('uws-pack')], [platformName, async () => require(platformName)]]
  const failures = []
  for (const [name, load] of tries) {
    try {
      const mod = await load()
      const uws = typeof mod.App === 'function' ? mod : mod.default
      if (typeof uws?.App !== 'function') throw new Error('module has no App()')
      return { uws, name }
    } catch (error) {
      failures.push(`${name}: ${String(error.message).split('\n')[0]}`)
    }
  }
  throw new Error(`cannot load uWebSockets.js: ${failures.join('; ')}`)
}

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
