// Integration: a full disk, for real — a 160 MiB ext4 image loop-mounted (needs root: CI runs
// as root; elsewhere the test says why it skips). A server at the default flags (its WAL sized
// to the disk) fills it until appends get 507; reads go on; every acknowledged byte survives
// kill -9 (on the full disk, right after a DELETE, at the end); once every stream is deleted
// appends resume by themselves within 5 s. Then the old fixed defaults, given as flags (a
// 64 MiB segment and a 64 MiB reserve, no room for a second segment): the one retired
// segment starts over in place and appends resume too.

import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { ringstream, startup, useChildren } from '../process.js'

const spawnChild = useChildren()
const MiB = 1024 * 1024
const BODY = 256 * 1024
/** How soon after the DELETE of every stream appends must be taken again. */
const RESUME_MS_MAX = 5000
/** How often a client retries a refused append meanwhile. */
const RETRY_MS = 200

let mountPoint: string | undefined
let skipReason: string | undefined

beforeAll(() => {
  if (process.getuid?.() !== 0) {
    skipReason = 'not root: cannot loop-mount an ext4 image'
    return
  }
  const work = mkdtempSync(join(tmpdir(), 'ringstream-diskfull-'))
  const image = join(work, 'disk.img')
  mountPoint = join(work, 'mnt')
  try {
    execFileSync('truncate', ['-s', '160M', image])
    // -m 0: no blocks kept for root, so "full" means full for this root-run server too.
    execFileSync('mkfs.ext4', ['-q', '-F', '-m', '0', image])
    execFileSync('mkdir', ['-p', mountPoint])
    execFileSync('mount', ['-o', 'loop', image, mountPoint])
  } catch (error) {
    skipReason = `cannot loop-mount an ext4 image: ${(error as Error).message.split('\n')[0]}`
    rmSync(work, { recursive: true, force: true })
    mountPoint = undefined
  }
})

afterAll(() => {
  if (mountPoint === undefined) return
  // A server a failed assertion left running may still hold files there: detach lazily then.
  try {
    execFileSync('umount', [mountPoint])
  } catch {
    execFileSync('umount', ['-l', mountPoint])
  }
  rmSync(join(mountPoint, '..'), { recursive: true, force: true })
})

const body = (i: number): Buffer => Buffer.alloc(BODY, `${String(i).padStart(6, '0')};`)

/** A data directory of its own on the image, with nothing an earlier (failed) test left. */
function freshDataDir(name: string): string {
  for (const left of readdirSync(mountPoint!)) if (left.startsWith('data')) rmSync(join(mountPoint!, left), { recursive: true, force: true })
  return join(mountPoint!, name)
}

/** A ringstream process on `dataDir`, restarted with kill -9; its stderr kept for failures. */
class Server {
  private child!: ReturnType<typeof spawnChild>
  url = ''
  stderr = ''

  constructor(private readonly args: string[]) {}

  async start(): Promise<void> {
    this.child = spawnChild(ringstream(['--port', '0', ...this.args]))
    this.child.stderr!.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()))
    this.url = `${(await startup(this.child)).url}/v1/stream`
  }

  /** kill -9, and a new process on the same directory. */
  async kill9(): Promise<void> {
    this.child.kill('SIGKILL')
    await once(this.child, 'exit')
    await this.start()
  }

  /** Stops it, and checks the reserve held: no data file write and no checkpoint ever
   * failed for want of space (the WAL alone met the full disk). */
  async stop(): Promise<void> {
    this.child.kill('SIGTERM')
    await once(this.child, 'exit')
    expect(this.stderr).not.toMatch(/data file failed|checkpoint failed/)
  }

  post(path: string, bytes: Buffer | string, type = 'application/octet-stream'): Promise<Response> {
    return fetch(`${this.url}/${path}`, { method: 'POST', headers: { 'Content-Type': type }, body: bytes })
  }

  /** Appends numbered bodies to a new stream `path` until three are refused with 507;
   * returns how many were acknowledged. */
  async fill(path: string): Promise<number> {
    expect((await fetch(`${this.url}/${path}`, { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream' } })).status).toBe(201)
    let acked = 0
    let refused = 0
    for (let i = 0; i < 2000 && refused < 3; i++) {
      const res = await this.post(path, body(acked))
      if (res.status === 204 || res.status === 200) {
        acked++
        continue
      }
      const text = await res.text()
      expect(res.status, `${text}\nserver stderr:\n${this.stderr}`).toBe(507)
      expect((JSON.parse(text) as { error: { code: string } }).error.code).toBe('INSUFFICIENT_STORAGE')
      refused++
    }
    expect(refused).toBe(3)
    return acked
  }

  /** Reads `path` whole and checks it holds exactly `acked` numbered bodies, in order. */
  async expectBodies(path: string, acked: number): Promise<void> {
    let offset = '-1'
    let read = 0
    for (;;) {
      const res = await fetch(`${this.url}/${path}?offset=${offset}`)
      expect(res.status).toBe(200)
      const bytes = Buffer.from(await res.arrayBuffer())
      for (let at = 0; at < bytes.length; at += BODY) {
        expect(bytes.subarray(at, at + 7).toString()).toBe(`${String(read).padStart(6, '0')};`)
        read++
      }
      offset = res.headers.get('stream-next-offset')!
      if (res.headers.get('stream-up-to-date') === 'true') break
    }
    expect(read).toBe(acked)
  }

  /** Appends `text` to `path`, retrying every RETRY_MS while refused with 507; returns the
   * milliseconds from `since` to the first acknowledged try. */
  async appendOnceResumed(path: string, text: string, since: number): Promise<number> {
    for (;;) {
      const res = await this.post(path, text, 'text/plain').catch(() => undefined)
      if (res !== undefined && (res.status === 204 || res.status === 200)) return performance.now() - since
      if (res !== undefined) {
        expect(res.status, `server stderr:\n${this.stderr}`).toBe(507)
        await res.arrayBuffer()
      }
      if (performance.now() - since > 4 * RESUME_MS_MAX) return Number.POSITIVE_INFINITY
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS))
    }
  }
}

describe('a full disk', () => {
  test('at the defaults: 507 when full, reads go on, nothing acknowledged is lost across kill -9, appends resume within 5 s of deleting every stream, cycle after cycle', async (context) => {
    if (skipReason !== undefined) {
      console.log(`disk-full test skipped: ${skipReason}`)
      context.skip()
    }
    const dataDir = freshDataDir('data')
    const server = new Server(['--data-dir', dataDir])
    await server.start()
    // No size flags: the WAL's segments are an eighth of the file system (144 MiB of data blocks).
    const segments = readdirSync(join(dataDir, 'wal')).filter((name) => name.endsWith('.wal'))
    expect(statSync(join(dataDir, 'wal', segments[0]!)).size).toBe(18 * MiB)
    expect((await fetch(`${server.url}/keep`, { method: 'PUT', headers: { 'Content-Type': 'text/plain' }, body: 'kept;' })).status).toBe(201)
    let kept = 'kept;'
    const report: string[] = []
    // Each cycle fills the disk through one stream, then deletes it: the space must come back
    // every time (the WAL may not keep what the data files and the checkpoint need).
    for (let cycle = 0; cycle < 3; cycle++) {
      const big = `big${cycle}`
      const acked = await server.fill(big)
      expect(acked * BODY).toBeGreaterThan(40 * MiB)
      // Full: appends that need a new WAL segment are refused for every stream; reads are served.
      expect((await server.post('keep', body(0), 'text/plain')).status).toBe(507)
      expect(await (await fetch(`${server.url}/keep`)).text()).toBe(kept)
      // The first time, kill -9 on the full disk and restart there.
      if (cycle === 0) await server.kill9()
      await server.expectBodies(big, acked)
      // A delete still goes through, and once its files are gone appends work again by themselves.
      expect((await fetch(`${server.url}/${big}`, { method: 'DELETE' })).status).toBe(204)
      const deleted = performance.now()
      // The second time, kill -9 right after the DELETE, before appends resume.
      if (cycle === 1) await server.kill9()
      const more = `again${cycle};${'.'.repeat(BODY)}`
      const resumedMs = await server.appendOnceResumed('keep', more, deleted)
      expect(resumedMs).toBeLessThan(RESUME_MS_MAX)
      kept += more
      report.push(`cycle ${cycle}: ${acked} appends of 256 KiB before 507, resumed ${Math.round(resumedMs)} ms after the DELETE${cycle === 1 ? ' (kill -9 and restart included)' : ''}`)
    }
    console.log(`disk-full test (160 MiB, default flags): ${report.join('; ')}`)
    await server.kill9()
    expect(await (await fetch(`${server.url}/keep`)).text()).toBe(kept)
    for (let cycle = 0; cycle < 3; cycle++) expect((await fetch(`${server.url}/big${cycle}`)).status).toBe(404)
    await server.stop()
  }, 120_000)

  test('at the old fixed defaults (a 64 MiB segment and a 64 MiB reserve on 160 MiB): the retired segment starts over and appends resume', async (context) => {
    if (skipReason !== undefined) context.skip()
    const dataDir = freshDataDir('data-fixed')
    const server = new Server(['--data-dir', dataDir, '--wal-segment-bytes', String(64 * MiB), '--disk-reserve-bytes', String(64 * MiB)])
    await server.start()
    expect((await fetch(`${server.url}/keep`, { method: 'PUT', headers: { 'Content-Type': 'text/plain' }, body: 'kept;' })).status).toBe(201)
    const acked = await server.fill('big')
    expect(acked * BODY).toBeGreaterThan(40 * MiB)
    expect((await fetch(`${server.url}/big`, { method: 'DELETE' })).status).toBe(204)
    const deleted = performance.now()
    const more = `again;${'.'.repeat(BODY)}`
    const resumedMs = await server.appendOnceResumed('keep', more, deleted)
    expect(resumedMs).toBeLessThan(RESUME_MS_MAX)
    // Still one segment, now starting where the log went on (no room for a second one).
    const segments = readdirSync(join(dataDir, 'wal')).filter((name) => name.endsWith('.wal'))
    expect(segments.length).toBe(1)
    expect(segments[0]).not.toBe('00000000000000000000.wal')
    console.log(`disk-full test (160 MiB, 64 MiB segment and reserve): ${acked} appends of 256 KiB before 507, resumed ${Math.round(resumedMs)} ms after the DELETE`)
    await server.kill9()
    expect(await (await fetch(`${server.url}/keep`)).text()).toBe(`kept;${more}`)
    expect((await fetch(`${server.url}/big`)).status).toBe(404)
    await server.stop()
  }, 60_000)
})
