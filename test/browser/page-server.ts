// test/browser/page-server.ts — the browser test's page and the browser: page/main.ts bundled
// with the official client by esbuild and served with page/index.html from an origin of its
// own (so every request to ringstream is cross-origin, CORS and all), and Debian's chromium
// started headless through playwright-core.

import { existsSync, readFileSync } from 'node:fs'
import { type Server, createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { type Browser, chromium } from 'playwright-core'

const PAGE_DIR = fileURLToPath(new URL('./page/', import.meta.url))
const CHROMIUM = '/usr/bin/chromium'

/** Why the browser test cannot run here, or undefined; with RINGSTREAM_REQUIRE_CHROMIUM=1
 * (CI) a missing chromium fails instead. */
export const chromiumMissing: string | undefined = (() => {
  if (existsSync(CHROMIUM)) return undefined
  if (process.env.RINGSTREAM_REQUIRE_CHROMIUM === '1') throw new Error(`RINGSTREAM_REQUIRE_CHROMIUM=1 but ${CHROMIUM} is not installed`)
  return 'chromium is not installed (Debian: apt-get install chromium)'
})()

export interface PageServer {
  /** The page's origin, e.g. http://127.0.0.1:34567 */
  readonly origin: string
  close(): Promise<void>
}

/** Bundles the page and serves it on a port of its own. */
export async function servePage(): Promise<PageServer> {
  const bundle = await build({ entryPoints: [`${PAGE_DIR}main.ts`], bundle: true, format: 'esm', platform: 'browser', target: 'es2022', write: false })
  const files: Record<string, { type: string; body: Uint8Array | string }> = {
    '/': { type: 'text/html; charset=utf-8', body: readFileSync(`${PAGE_DIR}index.html`, 'utf8') },
    '/page.js': { type: 'text/javascript', body: bundle.outputFiles[0]!.contents },
  }
  const server: Server = createServer((req, res) => {
    const file = files[new URL(req.url ?? '/', 'http://page').pathname]
    if (file === undefined) return res.writeHead(404).end()
    res.writeHead(200, { 'Content-Type': file.type, 'Cache-Control': 'no-store' }).end(file.body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

/** Debian's chromium, headless, with a new empty profile; without the background-networking
 * flags it keeps trying hosts this machine cannot reach. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
}
