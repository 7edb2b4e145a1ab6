// Integration: readiness. The server listens while it recovers: /healthz answers, /readyz
// and stream requests are 503 (Retry-After) until the WAL is replayed, then 200. The WAL
// here holds 1,500,000 appends (filled in-process by bench/lib/fill-streams.mjs), so recovery
// lasts long enough to be seen from outside.

import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { expect, test } from 'vitest'
import { ringstream, startup, useChildren } from '../process.js'

const spawnChild = useChildren()
const FILL = fileURLToPath(new URL('../../bench/lib/fill-streams.mjs', import.meta.url))

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

test('/readyz and stream requests are 503 during recovery, 200 once it is done; /healthz answers throughout', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'ringstream-ready-'))
  // No checkpoint: all 1,500,000 appends are replayed (about 350 ms here) at startup.
  execFileSync(process.execPath, [FILL, dataDir, '1500000', '0', 'r/json:json'], { stdio: 'inherit' })
  const port = await freePort()
  const server = spawnChild(ringstream(['--port', String(port), '--data-dir', dataDir]))
  const ready = startup(server)
  const base = `http://127.0.0.1:${port}`
  const seen = { notReady: 0, streamNotReady: 0, healthy: 0 }
  for (let i = 0; i < 2000; i++) {
    const res = await fetch(`${base}/readyz`).catch(() => undefined)
    if (res === undefined) {
      await new Promise((resolve) => setTimeout(resolve, 5))
      continue
    }
    if (res.status === 200) {
      expect(await res.text()).toBe('ready\n')
      break
    }
    expect(res.status).toBe(503)
    expect(res.headers.get('retry-after')).toBe('1')
    seen.notReady++
    const stream = await fetch(`${base}/v1/stream/r/json`, { method: 'HEAD' })
    if (stream.status === 503) seen.streamNotReady++
    if ((await fetch(`${base}/healthz`)).status === 200) seen.healthy++
  }
  expect(seen.notReady).toBeGreaterThan(0)
  expect(seen.streamNotReady).toBeGreaterThan(0)
  expect(seen.healthy).toBeGreaterThan(0)
  const { url } = await ready
  expect((await fetch(`${url}/readyz`)).status).toBe(200)
  const head = await fetch(`${url}/v1/stream/r/json`, { method: 'HEAD' })
  expect(head.status).toBe(200)
  server.kill('SIGTERM')
  rmSync(dataDir, { recursive: true, force: true })
}, 120_000)
