// Integration: the `ringstream` command as a user runs it — a real child process from
// bin/ringstream.js (compiled dist/), its startup line, flags, env vars and shutdown.

import { once } from 'node:events'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { BIN, output, ringstream, startup, useChildren } from '../process.js'

const spawnChild = useChildren()
const run = (args: string[], env: NodeJS.ProcessEnv = {}) => spawnChild(ringstream(args), env)
const startupUrl = async (child: Parameters<typeof startup>[0]): Promise<string> => (await startup(child)).url

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

  test('--log-format json writes JSON lines with time, level and message; --log-level warn keeps info out', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ringstream-log-'))
    const child = run(['--port', '0', '--data-dir', dataDir, '--log-format', 'json'])
    const exited = output(child)
    let seen = ''
    child.stdout!.on('data', (chunk: Buffer) => (seen += chunk.toString()))
    for (let i = 0; i < 200 && !seen.includes('listening on'); i++) await new Promise((resolve) => setTimeout(resolve, 25))
    child.kill('SIGTERM')
    const { stdout } = await exited
    const lines = stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>)
    expect(lines.map((line) => line.level)).toEqual(['info', 'info', 'info'])
    expect(lines[0]).toMatchObject({ records: 0, checkpointLsn: 0 })
    expect(lines[1]).toMatchObject({ url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/) })
    expect(String(lines[1]!.message)).toMatch(/^ringstream listening on http:/)
    expect(lines[2]).toMatchObject({ signal: 'SIGTERM', message: 'ringstream: SIGTERM received, shutting down' })
    for (const line of lines) expect(Date.parse(String(line.time))).toBeGreaterThan(Date.now() - 60_000)
    const quiet = run(['--port', '0', '--data-dir', dataDir, '--log-level', 'warn'])
    await new Promise((resolve) => setTimeout(resolve, 1500))
    const stopped = output(quiet)
    quiet.kill('SIGTERM')
    expect((await stopped).stdout).toBe('')
    const { code, stderr } = await output(run(['--log-level', 'loud']))
    expect(code).toBe(1)
    expect(stderr).toContain('the log level must be one of trace, debug, info, warn, error, fatal, silent')
    rmSync(dataDir, { recursive: true, force: true })
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

  test('a stale lock naming a live process that is not ringstream, or a zombie, is taken over', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ringstream-lock-'))
    // A reused pid: a live `sleep` now holds the number the lock names.
    const sleeper = spawnChild(['sleep', '30'])
    writeFileSync(join(dataDir, 'LOCK'), `${sleeper.pid}\n`)
    const next = run(['--port', '0', '--data-dir', dataDir])
    await startupUrl(next)
    next.kill('SIGTERM')
    await once(next, 'exit')
    // A zombie: a killed ringstream whose parent has not reaped it (a shell that ignores it).
    const parent = spawnChild(['sh', '-c', `${process.execPath} ${BIN} --port 0 --data-dir ${dataDir} & echo $!; kill -STOP $$`])
    const pid = Number((await once(parent.stdout!, 'data'))[0].toString().trim())
    for (let i = 0; i < 100 && !existsSync(join(dataDir, 'LOCK')); i++) await new Promise((resolve) => setTimeout(resolve, 50))
    await new Promise((resolve) => setTimeout(resolve, 500))
    process.kill(pid, 'SIGKILL')
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(readFileSync(`/proc/${pid}/stat`, 'utf8')).toMatch(/\) Z /)
    const after = run(['--port', '0', '--data-dir', dataDir])
    await startupUrl(after)
    after.kill('SIGTERM')
    await once(after, 'exit')
    parent.kill('SIGKILL')
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
