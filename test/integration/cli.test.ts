// Integration: the `ringstream` command as a user runs it — a real child process from
// bin/ringstream.js (compiled dist/), its startup line, flags, env vars and shutdown.

import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, test } from 'vitest'

const BIN = fileURLToPath(new URL('../../bin/ringstream.js', import.meta.url))
const children: ChildProcess[] = []

afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL')
})

function run(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  return child
}

async function output(child: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const [code] = (await once(child, 'exit')) as [number | null]
  return { code, stdout, stderr }
}

/** Resolves with the URL from the startup line. */
async function startupUrl(child: ChildProcess): Promise<string> {
  let seen = ''
  for await (const chunk of child.stdout!) {
    seen += (chunk as Buffer).toString()
    const match = /listening on (http:\/\/[^\s/]+)\/v1\/stream\//.exec(seen)
    if (match) return match[1]!
  }
  throw new Error(`server exited before its startup line: ${seen}`)
}

describe('ringstream CLI', () => {
  test('--help documents every flag and its environment variable', async () => {
    const { code, stdout } = await output(run(['--help']))
    expect(code).toBe(0)
    for (const text of ['--port', '--host', '--data-dir', '--durability', '--long-poll-timeout-ms', '--io', 'RINGSTREAM_PORT', 'RINGSTREAM_DURABILITY']) {
      expect(stdout).toContain(text)
    }
  })

  test('an unknown flag exits 2 with the usage', async () => {
    const { code, stderr } = await output(run(['--bogus']))
    expect(code).toBe(2)
    expect(stderr).toContain('Usage: ringstream')
  })

  test('an unknown durability class is refused at startup', async () => {
    const { code, stderr } = await output(run(['--port', '0', '--durability', 'sometimes']))
    expect(code).toBe(1)
    expect(stderr).toContain('durability must be memory, buffered or fsync')
  })

  test('a second server on the same data directory is refused while the first runs', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ringstream-lock-'))
    const first = run(['--port', '0', '--data-dir', dataDir])
    await startupUrl(first)
    const { code, stderr } = await output(run(['--port', '0', '--data-dir', dataDir]))
    expect(code).toBe(1)
    expect(stderr).toContain('in use by another ringstream process')
    first.kill('SIGKILL')
    await once(first, 'exit')
    // A SIGKILLed owner leaves a stale lock, which the next server takes over.
    const next = run(['--port', '0', '--data-dir', dataDir])
    await startupUrl(next)
    next.kill('SIGTERM')
    await once(next, 'exit')
    rmSync(dataDir, { recursive: true, force: true })
  })

  test('serves streams, honours env vars, and shuts down cleanly on SIGTERM', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ringstream-cli-'))
    const child = run([], { RINGSTREAM_PORT: '0', RINGSTREAM_LONG_POLL_TIMEOUT_MS: '300', RINGSTREAM_DATA_DIR: dataDir })
    const url = await startupUrl(child)
    const stream = `${url}/v1/stream/cli-smoke`
    expect((await fetch(stream, { method: 'PUT', headers: { 'Content-Type': 'text/plain' }, body: 'hi' })).status).toBe(201)
    expect(await (await fetch(stream)).text()).toBe('hi')
    const started = Date.now()
    const poll = await fetch(`${stream}?offset=now&live=long-poll`)
    expect(poll.status).toBe(204)
    expect(Date.now() - started).toBeLessThan(5000)
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    const [code] = (await exited) as [number | null]
    expect(code).toBe(0)
    // The default class is fsync: a restart on the same directory still has the stream.
    const again = run([], { RINGSTREAM_PORT: '0', RINGSTREAM_DATA_DIR: dataDir })
    const url2 = await startupUrl(again)
    expect(await (await fetch(`${url2}/v1/stream/cli-smoke`)).text()).toBe('hi')
    again.kill('SIGTERM')
    await once(again, 'exit')
    rmSync(dataDir, { recursive: true, force: true })
  })
})
