// http/uws.ts — loads uWebSockets.js. It is not on the npm registry under its own name:
// `uws-pack` carries binaries for Node 18–22, `@uwsjs/core` for Node 22/24/26. We load
// whichever matches the running Node, trying the other as a fallback.

import type * as UwsTypes from 'uws-pack'

export type Uws = typeof UwsTypes
export type HttpResponse = UwsTypes.HttpResponse
export type HttpRequest = UwsTypes.HttpRequest
export type TemplatedApp = UwsTypes.TemplatedApp
export type ListenSocket = UwsTypes.us_listen_socket

const PREFERRED_BY_NODE_MAJOR = (major: number): string[] =>
  major >= 24 ? ['@uwsjs/core', 'uws-pack'] : major >= 22 ? ['uws-pack', '@uwsjs/core'] : ['uws-pack']

let loaded: { uws: Uws; name: string } | undefined

export async function loadUws(): Promise<{ uws: Uws; name: string }> {
  if (loaded !== undefined) return loaded
  const major = Number(process.versions.node.split('.')[0])
  const failures: string[] = []
  for (const name of PREFERRED_BY_NODE_MAJOR(major)) {
    try {
      const module = (await import(name)) as Uws & { default?: Uws }
      const uws = typeof module.App === 'function' ? module : module.default!
      loaded = { uws, name }
      return loaded
    } catch (error) {
      failures.push(`${name}: ${(error as Error).message.split('\n')[0]}`)
    }
  }
  throw new Error(`cannot load uWebSockets.js for Node ${process.versions.node}:\n  ${failures.join('\n  ')}`)
}
