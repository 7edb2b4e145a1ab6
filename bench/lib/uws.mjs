// bench/lib/uws.mjs — the bench's own uWebSockets.js servers (null handler, broadcaster):
// loading uWS the way src/http/uws.ts does (`uws-pack` on Node <= 22,
// `@uwsjs/linux-x64-<major>` on newer Node), and serving an app on --host/--port with the
// listening line bench/lib/servers.mjs waits for.

import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'

/** Builds an app with `routes(app)` and serves it; prints `<label> listening on
 * http://<host>:<port>/ (<uws module>)` once ready, exits on SIGTERM and SIGINT. */
export async function serveBench(label, routes) {
  const { values } = parseArgs({ options: { port: { type: 'string' }, host: { type: 'string' } } })
  const port = Number(values.port ?? 18000)
  const host = values.host ?? '127.0.0.1'
  const { uws, name } = await loadUws()
  const app = uws.App()
  routes(app)
  app.listen(host, port, (socket) => {
    if (!socket) {
      console.error(`${label}: cannot listen on ${host}:${port}`)
      process.exit(1)
    }
    const actual = typeof uws.us_socket_local_port === 'function' ? uws.us_socket_local_port(socket) : port
    console.log(`${label} listening on http://${host}:${actual}/ (${name})`)
  })
  for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0))
}

export async function loadUws() {
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
