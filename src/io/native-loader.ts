// io/native-loader.ts — finds the io_uring addon, once per process: the prebuilt binary from
// this platform's package (ringstream-<platform>, laid out by the napi-rs CLI), then a local
// node-gyp build (build/Release, found with `bindings`), else none. Why each one failed is
// kept so the startup line can say it.

import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

export interface AddonLoad {
  /** The addon's exports, or undefined when neither the prebuilt nor a local build loads. */
  readonly addon: unknown
  /** Where it came from: "prebuilt ringstream-linux-x64-gnu", "local build", or "none". */
  readonly source: string
  /** One short reason per place that was tried and failed. */
  readonly failures: readonly string[]
}

let cached: AddonLoad | undefined

/** The napi-rs platform name (e.g. linux-x64-gnu), or undefined off Linux. scripts/platform.mjs
 * computes the same for the install scripts. */
export function platformName(): string | undefined {
  if (process.platform !== 'linux') return undefined
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined
  const libc = report?.header?.glibcVersionRuntime === undefined ? 'musl' : 'gnu'
  return `linux-${process.arch}-${libc}`
}

function firstLine(error: unknown): string {
  return String((error as Error)?.message ?? error).split('\n')[0]!
}

export function loadNativeAddon(): AddonLoad {
  if (cached !== undefined) return cached
  const platform = platformName()
  if (platform === undefined) {
    cached = { addon: undefined, source: 'none', failures: [`io_uring is Linux-only (this is ${process.platform})`] }
    return cached
  }
  const failures: string[] = []
  const prebuilt = `ringstream-${platform}`
  try {
    cached = { addon: require(prebuilt), source: `prebuilt ${prebuilt}`, failures }
    return cached
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND'
    failures.push(missing ? `no ${prebuilt} package` : `${prebuilt}: ${firstLine(error)}`)
  }
  try {
    const bindings = require('bindings') as (name: string) => unknown
    cached = { addon: bindings('ringstream'), source: 'local build', failures }
    return cached
  } catch (error) {
    const notBuilt = /Could not locate the bindings file/.test(firstLine(error))
    failures.push(notBuilt ? 'no local build' : `local build: ${firstLine(error)}`)
  }
  cached = { addon: undefined, source: 'none', failures }
  return cached
}
