// Integration: growing a cluster from 2 nodes to 3 and shrinking it back, online, through a
// real HAProxy (deploy/local-cluster.sh --nodes 3 --active 2; `ringstream rebalance`).
// Under writes (plain appends and an idempotent producer that retries until acknowledged),
// SSE readers (the official client) and a reader polling every stream: every stream answers
// at every moment, every acknowledged append is there exactly once and in order after each
// step, SSE readers end with exactly the stream's bytes, and streams end up on their new
// owner (node3 holds some after the growth, none after the shrink).

import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { DurableStream } from '@durable-streams/client'
import { describe, expect, test } from 'vitest'
import { eventually } from '../subscriptions/children.js'
import { haproxyMissing, useLocalCluster } from './local-cluster.js'

const CLI = fileURLToPath(new URL('../../bin/ringstream.js', import.meta.url))
const STREAMS = 48
const SSE_READERS = 6
/** Writes run this long before, between and after the two steps. */
const PHASE_MS = 1_500

describe.skipIf(haproxyMissing !== undefined)(`growing and shrinking a cluster${haproxyMissing === undefined ? '' : ` (skipped: ${haproxyMissing})`}`, () => {
  const { dataDir, proxy, nodeUrl } = useLocalCluster(3, ['--active', '2'], [])
  const url = (path: string): string => `${proxy()}/v1/stream/${path}`

  async function rebalance(step: '--add' | '--remove'): Promise<string> {
    const nodes = [1, 2, 3].map((i) => `node${i}=${nodeUrl(i)}`).join(',')
    const { stdout } = await promisify(execFile)('node', [CLI, 'rebalance', '--proxy', proxy(), '--proxy-admin', join(dataDir, 'haproxy.sock'), '--nodes', nodes, step, 'node3'])
    return stdout.trim()
  }

  async function holders(paths: readonly string[]): Promise<Map<string, number>> {
    const count = new Map<string, number>()
    for (const path of paths) {
      const node = (await fetch(url(path), { method: 'HEAD' })).headers.get('ringstream-node')!
      count.set(node, (count.get(node) ?? 0) + 1)
    }
    return count
  }

  test('2 → 3 → 2 nodes under writes, SSE readers and a poller: always readable, nothing lost or doubled, streams on their new owners', async () => {
    const paths = Array.from({ length: STREAMS }, (_, i) => `grow/s-${String(i).padStart(2, '0')}`)
    for (const [i, path] of paths.entries()) {
      const res = await fetch(url(path), { method: 'PUT', headers: { 'content-type': 'text/plain', ...(i % 4 === 0 ? { 'stream-ttl': '3600' } : {}) } })
      expect(res.status).toBe(201)
    }
    // A closed stream keeps its bytes and stays closed wherever it goes.
    const closedPath = 'grow/closed'
    expect((await fetch(url(closedPath), { method: 'PUT', headers: { 'content-type': 'text/plain', 'stream-closed': 'true' }, body: 'final;' })).status).toBe(201)
    // Fork families (text, and JSON: message ends cross the fork point): a fork moves as the
    // bytes it reads, its source once no fork on its node reads through it; offsets stay.
    // Each fork's offset after its own append is kept, to read on from it after the moves.
    const forkOffsets = new Map<string, string>()
    const families = Array.from({ length: 12 }, (_, i) => [`grow/source-${i}`, `grow/fork-${i}`] as const)
    const family = (i: number): { type: string; shared: string; own: string; more: string; fork: string; source: string } =>
      i % 2 === 0
        ? { type: 'text/plain', shared: 'shared;', own: 'own;', more: 'more;', fork: 'shared;own;', source: 'shared;' }
        : { type: 'application/json', shared: '[{"a":1},{"a":2}]', own: '{"b":1}', more: '{"c":1}', fork: '[{"a":1},{"a":2},{"b":1}]', source: '[{"a":1},{"a":2}]' }
    for (const [i, [source, fork]] of families.entries()) {
      const { type, shared, own: body } = family(i)
      expect((await fetch(url(source), { method: 'PUT', headers: { 'content-type': type }, body: shared })).status).toBe(201)
      expect((await fetch(url(fork), { method: 'PUT', headers: { 'content-type': type, 'stream-forked-from': `/v1/stream/${source}` } })).status).toBe(201)
      const own = await fetch(url(fork), { method: 'POST', headers: { 'content-type': type }, body })
      expect(own.status).toBe(204)
      forkOffsets.set(fork, own.headers.get('stream-next-offset')!)
    }
    expect(await holders(paths)).toSatisfy((count: Map<string, number>) => count.size === 2 && !count.has(nodeUrl(3)))

    /** Requests that did not succeed: none may, moves or not. */
    const failures: string[] = []
    /** Per stream, the bodies acknowledged, in order (one writer per stream). */
    const acknowledged = new Map<string, string[]>(paths.map((path) => [path, []]))
    let writing = true
    // Plain appends on even streams; an idempotent producer on odd ones, retrying the same
    // Producer-Seq until it is acknowledged (a move must keep its state: no double).
    const writer = async (w: number): Promise<void> => {
      const mine = paths.filter((_, i) => i % 4 === w)
      const seqs = new Map<string, number>()
      for (let n = 0; writing; n++) {
        const path = mine[n % mine.length]!
        const producer = w % 2 === 1
        const seq = seqs.get(path) ?? 0
        const body = producer ? `p${w}-${seq};` : `w${w}-${n};`
        const headers: Record<string, string> = { 'content-type': 'text/plain' }
        if (producer) Object.assign(headers, { 'producer-id': `writer-${w}`, 'producer-epoch': '0', 'producer-seq': String(seq) })
        let ok = false
        while (!ok) {
          const res = await fetch(url(path), { method: 'POST', headers, body }).catch(() => undefined)
          await res?.arrayBuffer()
          ok = res !== undefined && (res.status === 200 || res.status === 204)
          if (!ok) failures.push(`POST ${path}: ${res?.status ?? 'no answer'}`)
          if (!producer) break
          if (!ok) await new Promise((resolve) => setTimeout(resolve, 20))
        }
        // A plain append that failed is not acknowledged (and is counted as a failure above).
        if (ok) acknowledged.get(path)!.push(body)
        if (producer) seqs.set(path, seq + 1)
      }
    }
    let polls = 0
    const poller = async (): Promise<void> => {
      while (writing) {
        for (const path of [...paths, closedPath, ...families.flat()]) {
          const res = await fetch(url(path), { method: 'HEAD' }).catch((error: Error) => error)
          polls++
          if (res instanceof Error || res.status !== 200) failures.push(`${path}: ${res instanceof Error ? res.message : res.status}`)
        }
      }
    }
    const readers = await Promise.all(
      paths.slice(0, SSE_READERS).map(async (path) => {
        const res = await new DurableStream({ url: url(path), contentType: 'text/plain' }).stream({ live: 'sse', offset: '-1' })
        const reader = { path, text: '', res }
        res.subscribeText((chunk) => {
          reader.text += chunk.text
        })
        return reader
      }),
    )
    const load = [...Array.from({ length: 4 }, (_, w) => writer(w)), poller()]
    await new Promise((resolve) => setTimeout(resolve, PHASE_MS))
    const grown = await rebalance('--add')
    const afterGrow = await holders(paths)
    await new Promise((resolve) => setTimeout(resolve, PHASE_MS))
    const shrunk = await rebalance('--remove')
    const afterShrink = await holders(paths)
    await new Promise((resolve) => setTimeout(resolve, PHASE_MS))
    writing = false
    await Promise.all(load)

    expect(failures, `requests that failed during the moves (of ${polls})`).toEqual([])
    expect(afterGrow.get(nodeUrl(3)) ?? 0).toBeGreaterThan(0)
    expect(afterShrink.has(nodeUrl(3))).toBe(false)
    // Exactly once, in order: the stream is the acknowledged bodies, nothing else.
    for (const path of paths) {
      const text = await (await fetch(`${url(path)}?offset=-1`)).text()
      expect(text, path).toBe(acknowledged.get(path)!.join(''))
    }
    for (const [i, [source, fork]] of families.entries()) {
      const expected = family(i)
      expect(await (await fetch(`${url(fork)}?offset=-1`)).text(), fork).toBe(expected.fork)
      expect(await (await fetch(`${url(source)}?offset=-1`)).text(), source).toBe(expected.source)
      expect((await fetch(url(fork), { method: 'POST', headers: { 'content-type': expected.type }, body: expected.more })).status).toBe(204)
      const more = await (await fetch(`${url(fork)}?offset=${forkOffsets.get(fork)}`)).text()
      expect(more, fork).toBe(expected.type === 'text/plain' ? expected.more : `[${expected.more}]`)
    }
    // Forks moved as the bytes they read; a source stays only with a fork that reads through
    // it there, and nothing stays on the removed node (the command would exit 1).
    expect(Number(/ (\d+) streams moved/.exec(grown)?.[1])).toBeGreaterThan(STREAMS / 3)
    expect((await holders(families.flat())).has(nodeUrl(3))).toBe(false)
    const closed = await fetch(`${url(closedPath)}?offset=-1`)
    expect(closed.headers.get('stream-closed')).toBe('true')
    expect(await closed.text()).toBe('final;')
    expect((await fetch(url(paths[0]!), { method: 'HEAD' })).headers.get('stream-ttl')).toBe('3600')
    // SSE readers reconnected across the moves with no gap and no repeat.
    for (const reader of readers) {
      const full = acknowledged.get(reader.path)!.join('')
      await eventually(async () => (reader.text === full ? true : reader.text.length > full.length ? Promise.reject(new Error(`${reader.path}: SSE saw more than the stream holds`)) : undefined), `${reader.path}'s SSE reader to catch up`, 15_000)
      reader.res.cancel()
    }
    const appends = [...acknowledged.values()].reduce((sum, list) => sum + list.length, 0)
    console.log(`rebalance test: ${appends} appends acknowledged, ${polls} polls all answered; ${grown}; ${shrunk}`)
  }, 120_000)

  test('moving mode: the same 100 new paths created at two nodes at once are each made on one node only', async () => {
    const moving = (i: number, on: boolean): Promise<Response> => fetch(`${nodeUrl(i)}/v1/stream/__ds/cluster/moving`, { method: 'PUT', body: JSON.stringify({ on }) })
    for (const i of [1, 2]) expect((await moving(i, true)).status).toBe(204)
    try {
      const paths = Array.from({ length: 100 }, (_, i) => `race/p-${i}`)
      const put = async (i: number, path: string): Promise<number> => (await fetch(`${nodeUrl(i)}/v1/stream/${path}`, { method: 'PUT', headers: { 'content-type': 'text/plain' } })).status
      // node3 stopped (SIGSTOP) for 500 ms: nodes 1 and 2 both wait for its answer, so each
      // asks the other while neither has made the stream yet.
      const node3 = Number(readFileSync(join(dataDir, 'node-3.pid'), 'utf8'))
      process.kill(node3, 'SIGSTOP')
      setTimeout(() => process.kill(node3, 'SIGCONT'), 500)
      const statuses = await Promise.all(paths.map((path) => Promise.all([put(1, path), put(2, path)])))
      const local = async (i: number, path: string): Promise<number> => (await fetch(`${nodeUrl(i)}/v1/stream/${path}?ringstream-local=1`, { method: 'HEAD' })).status
      for (const [k, path] of paths.entries()) {
        // One create (201), and one forwarded to it, finding the same stream (200).
        expect([...statuses[k]!].sort(), path).toEqual([200, 201])
        expect(await Promise.all([1, 2, 3].map((i) => local(i, path))), path).toSatisfy((answers: number[]) => answers.filter((a) => a === 204).length === 1)
      }
    } finally {
      for (const i of [1, 2]) await moving(i, false)
    }
  })

  test('bad cluster requests are a 4xx, and rebalance without its arguments says how to run it', async () => {
    const admin = (action: string, method: string, body?: string | Buffer): Promise<Response> => fetch(`${nodeUrl(1)}/v1/stream/__ds/cluster/${action}`, { method, body })
    const expectCode = async (res: Response, status: number, code: string): Promise<void> => {
      expect(res.status).toBe(status)
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code)
    }
    await expectCode(await admin('moving', 'PUT', 'yes'), 400, 'BAD_REQUEST')
    await expectCode(await admin('moving', 'PUT', '{"on":"yes"}'), 400, 'BAD_REQUEST')
    await expectCode(await admin('move', 'POST', '{"path":"grow/s-00"}'), 400, 'BAD_REQUEST')
    await expectCode(await admin('move', 'POST', JSON.stringify({ path: 'grow/s-00', to: nodeUrl(1) })), 400, 'BAD_REQUEST')
    await expectCode(await admin('move', 'POST', JSON.stringify({ path: 'no/such/stream', to: nodeUrl(2) })), 404, 'NOT_FOUND')
    await expectCode(await admin('import', 'POST', Buffer.from([0, 0])), 400, 'BAD_REQUEST')
    await expectCode(await admin('import', 'POST', Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from('{x}')])), 400, 'BAD_REQUEST')
    await expectCode(await admin('import', 'POST', Buffer.concat([Buffer.from([0, 0, 0, 50]), Buffer.from('{}')])), 400, 'BAD_REQUEST')
    await expectCode(await admin('nothing', 'GET'), 404, 'NOT_FOUND')
    await expectCode(await admin('move', 'POST', JSON.stringify({ path: 'grow/s-00', to: 'http://10.9.9.9:80' })), 400, 'BAD_REQUEST')
    // The nodes' own routes are not for clients: the proxy refuses them.
    expect((await fetch(`${proxy()}/v1/stream/__ds/cluster/streams`)).status).toBe(403)
    expect((await fetch(`${proxy()}/v1/stream/grow/s-00?ringstream-local=1`, { method: 'HEAD' })).status).toBe(403)
    expect((await fetch(`${proxy()}/v1/stream/__ds/watch`, { method: 'POST', body: '{"pattern":"**"}' })).status).toBe(403)
    const usage = await promisify(execFile)('node', [CLI, 'rebalance', '--proxy', proxy()]).catch((error: { code: number; stderr: string }) => error)
    expect('code' in usage && usage.code).toBe(1)
    expect((usage as { stderr: string }).stderr).toContain('usage: ringstream rebalance')
  })
})
