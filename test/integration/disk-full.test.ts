// Integration: a full disk, for real — a small ext4 image loop-mounted (needs root: CI runs
// as root; elsewhere the test says why it skips). A server fills it until appends get 507;
// reads go on; every acknowledged byte survives kill -9; the server restarts on the full disk
// and serves reads; a DELETE still works and frees space, and appends resume by themselves.

import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { ringstream, startup, useChildren } from '../process.js'

const spawnChild = useChildren()
const MiB = 1024 * 1024
const BODY = 256 * 1024

let mountPoint: string | undefined
let image: string | undefined
let skipReason: string | undefined

beforeAll(() => {
  if (process.getuid?.() !== 0) {
    skipReason = 'not root: cannot loop-mount an ext4 image'
    return
  }
  const work = mkdtempSync(join(tmpdir(), 'ringstream-diskfull-'))
  image = join(work, 'disk.img')
  mountPoint = join(work, 'mnt')
  try {
    execFileSync('truncate', ['-s', '96M', image])
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

describe('a full disk', () => {
  test('507 when full, reads and deletes go on, nothing acknowledged is lost, appends resume after a delete, cycle after cycle', async (context) => {
    if (skipReason !== undefined) {
      console.log(`disk-full test skipped: ${skipReason}`)
      context.skip()
    }
    const dataDir = join(mountPoint!, 'data')
    const args = ['--port', '0', '--data-dir', dataDir, '--wal-segment-bytes', String(16 * MiB), '--disk-reserve-bytes', String(8 * MiB)]
    // The servers' stderr, shown when a status is not the one expected.
    let stderr = ''
    const spawnServer = (): ReturnType<typeof spawnChild> => {
      const child = spawnChild(ringstream(args))
      child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
      return child
    }
    let server = spawnServer()
    let url = `${(await startup(server)).url}/v1/stream`
    const restart = async (): Promise<void> => {
      server.kill('SIGKILL')
      await once(server, 'exit')
      server = spawnServer()
      url = `${(await startup(server)).url}/v1/stream`
    }
    const post = (path: string, bytes: Buffer | string, type = 'application/octet-stream'): Promise<Response> =>
      fetch(`${url}/${path}`, { method: 'POST', headers: { 'Content-Type': type }, body: bytes })
    expect((await fetch(`${url}/keep`, { method: 'PUT', headers: { 'Content-Type': 'text/plain' }, body: 'kept;' })).status).toBe(201)
    let kept = 'kept;'
    const report: string[] = []
    // Each cycle fills the disk through one stream, then deletes it: the space must come back
    // every time (the WAL may not keep what the data files and the checkpoint need).
    for (let cycle = 0; cycle < 3; cycle++) {
      const big = `big${cycle}`
      expect((await fetch(`${url}/${big}`, { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream' } })).status).toBe(201)
      let acked = 0
      let refused = 0
      for (let i = 0; i < 1000 && refused < 3; i++) {
        const res = await post(big, body(acked))
        if (res.status === 204 || res.status === 200) {
          acked++
          continue
        }
        const text = await res.text()
        expect(res.status, `${text}\nserver stderr:\n${stderr}`).toBe(507)
        expect((JSON.parse(text) as { error: { code: string } }).error.code).toBe('INSUFFICIENT_STORAGE')
        refused++
      }
      expect(refused).toBe(3)
      expect(acked * BODY).toBeGreaterThan(30 * MiB)
      // Full: appends that need a new WAL segment are refused for every stream; reads are served.
      expect((await post('keep', body(0), 'text/plain')).status).toBe(507)
      expect(await (await fetch(`${url}/keep`)).text()).toBe(kept)
      // The first time, kill -9 on the full disk and restart there.
      if (cycle === 0) await restart()
      let offset = '-1'
      let read = 0
      for (;;) {
        const res = await fetch(`${url}/${big}?offset=${offset}`)
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
      // A delete still goes through, and once its files are gone appends work again by themselves.
      expect((await fetch(`${url}/${big}`, { method: 'DELETE' })).status).toBe(204)
      const started = Date.now()
      let resumedAfterMs: number | undefined
      const more = `again${cycle};${'.'.repeat(BODY)}`
      while (Date.now() - started < 30_000) {
        const res = await post('keep', more, 'text/plain')
        if (res.status === 204 || res.status === 200) {
          resumedAfterMs = Date.now() - started
          break
        }
        expect(res.status).toBe(507)
        await res.arrayBuffer()
        await new Promise((resolve) => setTimeout(resolve, 250))
      }
      // "Within seconds" (a functional bound, not a speed figure: a 30 s checkpoint interval
      // would otherwise keep the deleted stream's files until the next checkpoint).
      expect(resumedAfterMs).toBeDefined()
      expect(resumedAfterMs!).toBeLessThan(10_000)
      kept += more
      report.push(`cycle ${cycle}: ${acked} appends of 256 KiB before 507, resumed ${resumedAfterMs} ms after the DELETE`)
    }
    console.log(`disk-full test: ${report.join('; ')}`)
    await restart()
    expect(await (await fetch(`${url}/keep`)).text()).toBe(kept)
    expect((await fetch(`${url}/big0`)).status).toBe(404)
    server.kill('SIGTERM')
    await once(server, 'exit')
  }, 180_000)
})
