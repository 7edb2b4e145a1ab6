// Crash test with real processes: a ringstream server (fsync class) is driven by concurrent
// producers and SIGKILLed at random moments, then restarted on the same data directory.
// Every acknowledged append must be there, byte-exact and in order at its offset; producer
// retries must dedupe; closes, forks and deletes that were acknowledged must stick. Data
// segments are small (64 KiB), so kills land before, during and after segment rolls.
// crash-uring.test.ts and crash-fs.test.ts run it on each real I/O backend.

import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, test } from 'vitest'

const BIN = fileURLToPath(new URL('../../bin/ringstream.js', import.meta.url))
const KILLS = Number(process.env.CRASH_KILLS ?? 24)
const READY_TIMEOUT_MS = 15_000
/** Small segments: every producer's stream rolls into new segment files during the test. */
const SEGMENT_BYTES = 64 * 1024
const dataDir = mkdtempSync(join(tmpdir(), 'ringstream-crash-'))
let child: ChildProcess | undefined

afterAll(() => {
  if (child?.exitCode === null) child.kill('SIGKILL')
  rmSync(dataDir, { recursive: true, force: true })
})

async function start(ioBackend: 'uring' | 'fs'): Promise<{ url: string; readyMs: number }> {
  const started = Date.now()
  child = spawn(process.execPath, [BIN, '--port', '0', '--data-dir', dataDir, '--durability', 'fsync', '--io', ioBackend, '--segment-bytes', String(SEGMENT_BYTES)], { stdio: ['ignore', 'pipe', 'pipe'] })
  let seen = ''
  child.stderr!.on('data', (chunk: Buffer) => (seen += chunk.toString()))
  const timer = setTimeout(() => child?.kill('SIGKILL'), READY_TIMEOUT_MS)
  try {
    for await (const chunk of child.stdout!) {
      seen += (chunk as Buffer).toString()
      const match = /listening on (http:\/\/[^\s/]+)\/v1\/stream\//.exec(seen)
      if (match) {
        // The server must really be on the backend under test, not a fallback.
        expect(seen).toContain(ioBackend === 'uring' ? 'io=uring' : 'io=node-fs')
        return { url: match[1]!, readyMs: Date.now() - started }
      }
    }
  } finally {
    clearTimeout(timer)
  }
  throw new Error(`server did not start:\n${seen}`)
}

async function kill(): Promise<void> {
  const exited = once(child!, 'exit')
  child!.kill('SIGKILL')
  await exited
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** One idempotent producer writing binary appends to its own stream. */
class ProducerWriter {
  acked: Buffer[] = []
  nextSeq = 0
  pending: { seq: number; body: Buffer } | undefined

  constructor(
    readonly path: string,
    readonly id: string,
  ) {}

  headers(seq: number): Record<string, string> {
    return { 'Content-Type': 'application/octet-stream', 'Producer-Id': this.id, 'Producer-Epoch': '0', 'Producer-Seq': String(seq) }
  }

  async run(url: string, stop: { value: boolean }): Promise<void> {
    while (!stop.value) {
      const body = randomBytes(16 + Math.floor(Math.random() * 3000))
      const seq = this.nextSeq
      this.pending = { seq, body }
      let res: Response
      try {
        res = await fetch(`${url}/v1/stream/${this.path}`, { method: 'POST', headers: this.headers(seq), body })
      } catch {
        return // killed mid-request: outcome unknown, resolved by retry after restart
      }
      expect([200, 204]).toContain(res.status)
      this.acked.push(body)
      this.nextSeq++
      this.pending = undefined
    }
  }

  /** After a restart: resend the unknown request; 200 (was lost) or 204 (was durable) both mean "in, once". */
  async settle(url: string): Promise<void> {
    if (this.pending === undefined) return
    const { seq, body } = this.pending
    const res = await fetch(`${url}/v1/stream/${this.path}`, { method: 'POST', headers: this.headers(seq), body })
    expect([200, 204]).toContain(res.status)
    this.acked.push(body)
    this.nextSeq++
    this.pending = undefined
  }

  async verify(url: string): Promise<void> {
    const res = await fetch(`${url}/v1/stream/${this.path}`, { headers: { 'Accept-Encoding': 'identity' } })
    const content = Buffer.from(await readAll(url, this.path))
    expect(res.status).toBe(200)
    expect(content.equals(Buffer.concat(this.acked)), `${this.path}: content differs from acknowledged appends`).toBe(true)
    if (this.nextSeq > 0) {
      const retry = await fetch(`${url}/v1/stream/${this.path}`, { method: 'POST', headers: this.headers(this.nextSeq - 1), body: this.acked[this.acked.length - 1] })
      expect(retry.status, `${this.path}: retry of the last acknowledged seq`).toBe(204)
      expect(Number(retry.headers.get('producer-seq'))).toBe(this.nextSeq - 1)
    }
  }
}

/** An idempotent producer on a JSON stream: verified as parsed messages, not bytes. */
class JsonProducerWriter extends ProducerWriter {
  override headers(seq: number): Record<string, string> {
    return { ...super.headers(seq), 'Content-Type': 'application/json' }
  }

  override async run(url: string, stop: { value: boolean }): Promise<void> {
    while (!stop.value) {
      const seq = this.nextSeq
      const body = Buffer.from(JSON.stringify([{ producer: this.id, seq, pad: 'x'.repeat(Math.floor(Math.random() * 200)) }, { producer: this.id, seq, second: true }]))
      this.pending = { seq, body }
      let res: Response
      try {
        res = await fetch(`${url}/v1/stream/${this.path}`, { method: 'POST', headers: this.headers(seq), body })
      } catch {
        return
      }
      expect([200, 204]).toContain(res.status)
      this.acked.push(body)
      this.nextSeq++
      this.pending = undefined
    }
  }

  override async verify(url: string): Promise<void> {
    const messages = JSON.parse(Buffer.from(await readAll(url, this.path)).toString()) as unknown[]
    const expected = this.acked.flatMap((body) => JSON.parse(body.toString()) as unknown[])
    expect(messages, `${this.path}: JSON messages differ from acknowledged appends`).toEqual(expected)
  }
}

/** Appends without producer headers; acknowledged ones must sit at their returned offsets. */
class PlainWriter {
  acked: Array<{ end: number; body: Buffer }> = []

  constructor(readonly path: string) {}

  async run(url: string, stop: { value: boolean }): Promise<void> {
    while (!stop.value) {
      const body = Buffer.from(`line ${randomBytes(6).toString('hex')}\n`)
      try {
        const res = await fetch(`${url}/v1/stream/${this.path}`, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body })
        expect(res.status).toBe(204)
        this.acked.push({ end: Number(res.headers.get('stream-next-offset')!.split('_')[1]), body })
      } catch {
        return
      }
    }
  }

  async verify(url: string): Promise<void> {
    const content = Buffer.from(await readAll(url, this.path))
    for (const { end, body } of this.acked) {
      expect(content.subarray(end - body.length, end).equals(body), `${this.path}: acknowledged append at ${end}`).toBe(true)
    }
  }
}

async function readAll(url: string, path: string): Promise<Uint8Array> {
  const parts: Uint8Array[] = []
  let offset = '-1'
  for (;;) {
    const res = await fetch(`${url}/v1/stream/${path}?offset=${offset}`, { headers: { 'Accept-Encoding': 'identity' } })
    expect(res.status, `read ${path}`).toBe(200)
    parts.push(new Uint8Array(await res.arrayBuffer()))
    offset = res.headers.get('stream-next-offset')!
    if (res.headers.get('stream-up-to-date') === 'true') return Buffer.concat(parts)
  }
}

async function put(url: string, path: string, headers: Record<string, string>, body?: Uint8Array): Promise<Response> {
  return fetch(`${url}/v1/stream/${path}`, { method: 'PUT', headers, body })
}

export function crashSuite(io: 'uring' | 'fs'): void {
  describe(`crash recovery with SIGKILL (--io ${io})`, () => {
    test(`acknowledged data survives ${KILLS} kills`, { timeout: 240_000 }, async () => {
      let { url } = await start(io)
      const producers = [0, 1, 2, 3].map((i) => new ProducerWriter(`crash/producer-${i}`, `p${i}`))
      const json = new JsonProducerWriter('crash/json', 'j0')
      const plain = new PlainWriter('crash/plain')
      for (const writer of producers) expect((await put(url, writer.path, { 'Content-Type': 'application/octet-stream' })).status).toBe(201)
      expect((await put(url, json.path, { 'Content-Type': 'application/json' })).status).toBe(201)
      expect((await put(url, plain.path, { 'Content-Type': 'text/plain' })).status).toBe(201)
      const closed: string[] = []
      const deleted: string[] = []
      const forks: Array<{ path: string; content: Buffer }> = []
      const readyTimes: number[] = []

      for (let round = 0; round < KILLS; round++) {
        const stop = { value: false }
        const running = [...producers.map((writer) => writer.run(url, stop)), json.run(url, stop), plain.run(url, stop)]
        // Lifecycle changes while the writers run; each acknowledged one must survive.
        const life = `crash/life-${round}`
        if ((await put(url, life, { 'Content-Type': 'text/plain' }, Buffer.from('life'))).status === 201) {
          const close = await fetch(`${url}/v1/stream/${life}`, { method: 'POST', headers: { 'Stream-Closed': 'true' } }).catch(() => undefined)
          if (close?.status === 204) closed.push(life)
        }
        const source = producers[round % producers.length]!
        const forkPath = `crash/fork-${round}`
        const sourceContent = Buffer.concat(source.acked)
        const fork = await put(url, forkPath, {
          'Stream-Forked-From': `/v1/stream/${source.path}`,
          'Stream-Fork-Offset': `0000000000000000_${String(sourceContent.length).padStart(16, '0')}`,
        }).catch(() => undefined)
        if (fork?.status === 201) forks.push({ path: forkPath, content: sourceContent })
        const doomed = `crash/doomed-${round}`
        if ((await put(url, doomed, { 'Content-Type': 'text/plain' }).catch(() => undefined))?.status === 201) {
          const removed = await fetch(`${url}/v1/stream/${doomed}`, { method: 'DELETE' }).catch(() => undefined)
          if (removed?.status === 204) deleted.push(doomed)
        }
        await sleep(50 + Math.random() * 300)
        await kill()
        stop.value = true
        await Promise.all(running)

        const restarted = await start(io)
        url = restarted.url
        readyTimes.push(restarted.readyMs)
        for (const writer of [...producers, json]) await writer.settle(url)
        for (const writer of producers) await writer.verify(url)
        await json.verify(url)
        await plain.verify(url)
        for (const path of closed) {
          const head = await fetch(`${url}/v1/stream/${path}`, { method: 'HEAD' })
          expect(head.headers.get('stream-closed'), `${path} stays closed`).toBe('true')
        }
        for (const path of deleted) expect((await fetch(`${url}/v1/stream/${path}`, { method: 'HEAD' })).status, `${path} stays deleted`).toBe(404)
        for (const { path, content } of forks) expect(Buffer.from(await readAll(url, path)).equals(content), `${path} keeps its inherited data`).toBe(true)
      }
      await kill()
      const totalAcked = [...producers, json].reduce((sum, writer) => sum + writer.acked.length, 0) + plain.acked.length
      expect(totalAcked).toBeGreaterThan(KILLS)
      // The streams did roll into later segments while the kills went on.
      expect(readdirSync(join(dataDir, 'streams')).filter((name) => /\.0000(0[1-9]|[1-9]\d)\.data$/.test(name)).length).toBeGreaterThan(0)
      console.log(`crash test: ${KILLS} kills, ${totalAcked} acknowledged appends verified, restart-to-ready max ${Math.max(...readyTimes)} ms`)
    })
  })
}
