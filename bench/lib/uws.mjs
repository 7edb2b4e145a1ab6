// bench/lib/uws.mjs — loads uWebSockets.js for the bench's own servers (null handler,
// broadcaster) the way src/http/uws.ts does: `uws-pack` on Node <= 22,
// `@uwsjs/linux-x64-<major>` on newer Node.

import { createRequire } from 'node:module'

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
