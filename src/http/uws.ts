// http/uws.ts — loads uWebSockets.js. It is not on the npm registry under its own name:
// `uws-pack` carries binaries for Node 18–22; the `@uwsjs/<platform>-<arch>-<node major>`
// packages carry the same server for Node 22/24/26 (linux-x64 is what our registry has).
// We load whichever matches the running Node, trying the other as a fallback.

import { createRequire } from 'node:module'
import type * as UwsTypes from 'uws-pack'

export type Uws = typeof UwsTypes
export type HttpResponse = UwsTypes.HttpResponse
export type HttpRequest = UwsTypes.HttpRequest
export type TemplatedApp = UwsTypes.TemplatedApp
export type ListenSocket = UwsTypes.us_listen_socket

const require = createRequire(import.meta.url)

interface Candidate {
  readonly name: string
  load(): Promise<Uws>
}

function candidates(major: number): Candidate[] {
  const uwsPack: Candidate = {
    name: 'uws-pack',
    load: async () => (await import('uws-pack')) as Uws,
  }
  const platformName = `@uwsjs/${process.platform}-${process.arch}-${major}`
  const uwsjs: Candidate = {
    name: platformName,
    load: async () => require(platformName) as Uws,
  }
  return major >= 23 ? [uwsjs, uwsPack] : [uwsPack, uwsjs]
}

let loaded: { uws: Uws; name: string } | undefined

/** uWS answers 431 itself (without our headers) past 4 KiB of request headers; allow 16 KiB
 * so oversized paths and header values reach our validation and get a JSON 400 instead.
 * uWS reads this variable once, when the module loads. */
const HEADER_BYTES_MAX = '16384'

export async function loadUws(): Promise<{ uws: Uws; name: string }> {
  if (loaded !== undefined) return loaded
  process.env.UWS_HTTP_MAX_HEADERS_SIZE ??= HEADER_BYTES_MAX
  const major = Number(process.versions.node.split('.')[0])
  const failures: string[] = []
  for (const candidate of candidates(major)) {
    try {
      const uws = await candidate.load()
      if (typeof uws.App !== 'function') throw new Error('module has no App()')
      loaded = { uws, name: candidate.name }
      return loaded
    } catch (error) {
      failures.push(`${candidate.name}: ${(error as Error).message.split('\n')[0]}`)
    }
  }
  throw new UwsLoadError(`cannot load uWebSockets.js for Node ${process.versions.node} on ${process.platform}-${process.arch}:\n  ${failures.join('\n  ')}`, shortReason(failures))
}

/** uWebSockets.js cannot be loaded here; `reason` says why in a few words (the startup line). */
export class UwsLoadError extends Error {
  constructor(
    message: string,
    readonly reason: string,
  ) {
    super(message)
  }
}

/** The likeliest cause among the candidates' failures: a C library older than the build
 * needs, or no build for this Node, platform or architecture. */
function shortReason(failures: readonly string[]): string {
  for (const failure of failures) {
    const glibc = /GLIBC_(\d+\.\d+)' not found/.exec(failure)
    if (glibc === null) continue
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined
    const running = report?.header?.glibcVersionRuntime
    return `needs glibc ${glibc[1]}${running === undefined ? '' : `, this system has ${running}`}`
  }
  return `no build for Node ${process.versions.node} on ${process.platform}-${process.arch}`
}
