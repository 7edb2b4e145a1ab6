// Integration: how the real command picks its I/O backend. `auto` takes io_uring when the
// addon loads and the kernel allows it; under a seccomp filter that refuses io_uring_setup
// (as locked-down containers do) it falls back to node:fs and still serves; `--io uring`
// then refuses to start with a clear message.

import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { output, ringstream, startup, useChildren } from '../process.js'
import { uringUnavailable } from '../uring-available.js'

const SOURCE = fileURLToPath(new URL('../io/no-uring.c', import.meta.url))
const spawnChild = useChildren()
let work = ''
let noUring = ''

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'ringstream-io-'))
  noUring = join(work, 'no-uring')
  execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', noUring, SOURCE])
})

afterAll(() => rmSync(work, { recursive: true, force: true }))

/** Creates a stream, appends three times, reads it back; returns the body. */
async function smoke(url: string): Promise<string> {
  const stream = `${url}/v1/stream/smoke`
  expect((await fetch(stream, { method: 'PUT', headers: { 'content-type': 'text/plain' } })).status).toBe(201)
  for (const part of ['a', 'b', 'c']) {
    expect((await fetch(stream, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: part })).status).toBe(204)
  }
  return (await fetch(`${stream}?offset=-1`)).text()
}

describe.runIf(process.platform === 'linux')('I/O backend selection', () => {
  test.skipIf(uringUnavailable !== undefined)('auto picks io_uring when the addon loads and the kernel allows it', async () => {
    const child = spawnChild(ringstream(['--port', '0', '--data-dir', join(work, 'auto')]))
    const { url, line } = await startup(child)
    expect(line).toMatch(/io=uring \((prebuilt ringstream-linux-[a-z0-9]+-gnu|local build)\)/)
    expect(await smoke(url)).toBe('abc')
    child.kill('SIGTERM')
    expect((await output(child)).code).toBe(0)
  })

  test.skipIf(uringUnavailable !== undefined)('with io_uring_setup refused by seccomp, auto falls back to node:fs and serves, durably', async () => {
    const dataDir = join(work, 'fallback')
    const first = spawnChild([noUring, ...ringstream(['--port', '0', '--data-dir', dataDir, '--io', 'auto'])])
    const { url, line } = await startup(first)
    expect(line).toContain('io=node-fs (io_uring unavailable: io_uring_setup failed: EPERM)')
    expect(await smoke(url)).toBe('abc')
    first.kill('SIGKILL')
    await once(first, 'exit')
    const second = spawnChild([noUring, ...ringstream(['--port', '0', '--data-dir', dataDir])])
    const restarted = await startup(second)
    expect(await (await fetch(`${restarted.url}/v1/stream/smoke?offset=-1`)).text()).toBe('abc')
  })

  test.skipIf(uringUnavailable !== undefined)('--io uring fails fast, saying why, when io_uring is refused', async () => {
    const child = spawnChild([noUring, ...ringstream(['--port', '0', '--data-dir', join(work, 'strict'), '--io', 'uring'])])
    const { code, stderr } = await output(child)
    expect(code).toBe(1)
    expect(stderr).toContain('--io uring: io_uring is not available here (io_uring_setup failed: EPERM)')
  })

  test('--io fs is honoured even where io_uring works', async () => {
    const child = spawnChild(ringstream(['--port', '0', '--data-dir', join(work, 'fs'), '--io', 'fs']))
    const { url, line } = await startup(child)
    expect(line).toContain('io=node-fs (requested)')
    expect(await smoke(url)).toBe('abc')
  })
})
