// Integration: one subscription over a whole cluster, through a real HAProxy. A webhook
// subscription `jobs/*` over 100 streams spread on 3 nodes (deploy/local-cluster.sh) while
// writers append through the proxy; the subscription's own node is SIGKILLed in the
// middle, then another node, each restarted by the script's supervisor. Every append
// acknowledged to a writer must be covered by a wake the receiver got (a wake lists each
// pending stream with its tail), and the subscription's cursors end at every stream's tail.

import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { type Server, createServer } from 'node:http'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { eventually } from '../subscriptions/children.js'
import { haproxyMissing, useLocalCluster } from './local-cluster.js'

const NODES = 3
const STREAMS = 100
const WRITERS = 4
/** Appends run this long in each of three phases: before, between and after the kills. */
const PHASE_MS = 2_500

interface WakeBody {
  readonly subscription_id: string
  readonly streams: ReadonlyArray<{ readonly path: string; readonly tail_offset: string }>
}

describe.skipIf(haproxyMissing !== undefined)(`a subscription over a ${NODES}-node cluster${haproxyMissing === undefined ? '' : ` (skipped: ${haproxyMissing})`}`, () => {
  const cluster = useLocalCluster(NODES, [], ['--webhooks', '--checkpoint-interval-ms', '1000'])
  const { dataDir, proxy, nodeUrl } = cluster
  let receiver: Server
  /** Per stream, the largest tail a wake listed. */
  const delivered = new Map<string, string>()
  let wakes = 0

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (chunk: Buffer) => chunks.push(chunk))
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString()) as WakeBody
        wakes++
        for (const { path, tail_offset: tail } of body.streams) if ((delivered.get(path) ?? '') < tail) delivered.set(path, tail)
        // Done: the wake's snapshot is acked (PROTOCOL §6.6), the next wake brings what follows.
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"done":true}')
      })
    })
    receiver.listen(0, '127.0.0.1')
    await once(receiver, 'listening')
  }, 90_000)

  afterAll(() => {
    receiver?.close()
  })

  const pidOf = (i: number): number => Number(readFileSync(join(dataDir, `node-${i}.pid`), 'utf8'))

  /** SIGKILLs node i and waits until the supervisor's new process answers /readyz. */
  async function killAndWait(i: number): Promise<void> {
    const pid = pidOf(i)
    process.kill(pid, 'SIGKILL')
    await eventually(async () => {
      if (pidOf(i) === pid) return undefined
      const ready = await fetch(`${nodeUrl(i)}/readyz`).catch(() => undefined)
      return ready?.status === 200 ? true : undefined
    }, `node-${i} to restart after SIGKILL`, 30_000)
  }

  test('a glob subscription hears of every acknowledged append on every node, across SIGKILLs of its own node and of another', async () => {
    const paths = Array.from({ length: STREAMS }, (_, i) => `jobs/s-${String(i).padStart(3, '0')}`)
    const holders = new Set<string>()
    for (const path of paths) {
      expect((await fetch(`${proxy()}/v1/stream/${path}`, { method: 'PUT', headers: { 'content-type': 'text/plain' } })).status).toBe(201)
      holders.add((await fetch(`${proxy()}/v1/stream/${path}`, { method: 'HEAD' })).headers.get('ringstream-node')!)
    }
    expect(holders.size).toBe(NODES)

    const id = 'all-jobs'
    const created = await fetch(`${proxy()}/v1/stream/__ds/subscriptions/${id}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'webhook', pattern: 'jobs/*', webhook: { url: `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hook` }, lease_ttl_ms: 2000 }),
    })
    expect(created.status).toBe(201)
    // The subscription's node: the one that answers for it directly.
    let home = 0
    for (let i = 1; i <= NODES; i++) if ((await fetch(`${nodeUrl(i)}/v1/stream/__ds/subscriptions/${id}`)).status === 200) home = i
    expect(home).toBeGreaterThan(0)
    const other = home === 1 ? 2 : 1

    /** Per stream, the largest offset an append was acknowledged at. */
    const acknowledged = new Map<string, string>()
    let appends = 0
    let refused = 0
    let writing = true
    const writer = async (w: number): Promise<void> => {
      for (let n = 0; writing; n++) {
        const path = paths[(n * WRITERS + w) % STREAMS]!
        try {
          const res = await fetch(`${proxy()}/v1/stream/${path}`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: `${w}-${n};` })
          await res.arrayBuffer()
          if (res.status === 204 || res.status === 200) {
            const offset = res.headers.get('stream-next-offset')!
            if ((acknowledged.get(path) ?? '') < offset) acknowledged.set(path, offset)
            appends++
            continue
          }
          refused++
        } catch {
          refused++
        }
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    }
    const writers = Array.from({ length: WRITERS }, (_, w) => writer(w))
    await new Promise((resolve) => setTimeout(resolve, PHASE_MS))
    await killAndWait(home)
    await new Promise((resolve) => setTimeout(resolve, PHASE_MS))
    await killAndWait(other)
    await new Promise((resolve) => setTimeout(resolve, PHASE_MS))
    writing = false
    await Promise.all(writers)
    expect(acknowledged.size).toBe(STREAMS)

    // None missed: every stream's last acknowledged append is within a delivered wake.
    const missed = async (): Promise<string[]> => paths.filter((path) => (delivered.get(path) ?? '') < acknowledged.get(path)!)
    await eventually(async () => ((await missed()).length === 0 ? true : undefined), `wakes for every acknowledged append (missing: ${(await missed()).slice(0, 5).join(', ')})`, 30_000)
    // And the subscription's cursors, acked by the receiver's `done`, reach every tail.
    const tails = new Map<string, string>()
    for (const path of paths) tails.set(path, (await fetch(`${proxy()}/v1/stream/${path}`, { method: 'HEAD' })).headers.get('stream-next-offset')!)
    await eventually(async () => {
      const sub = (await (await fetch(`${proxy()}/v1/stream/__ds/subscriptions/${id}`)).json()) as { streams: Array<{ path: string; acked_offset: string }> }
      const acked = new Map(sub.streams.map((link) => [link.path, link.acked_offset]))
      return paths.every((path) => acked.get(path) === tails.get(path)) ? true : undefined
    }, 'the subscription acked at every stream\'s tail', 30_000)
    console.log(`cluster subscription: ${appends} appends acknowledged (${refused} refused while a node was down) on ${STREAMS} streams, ${wakes} wakes; home node-${home} and node-${other} SIGKILLed`)
  }, 120_000)

  test('a node lists and then watches its streams for another node (POST __ds/watch); a bad watch request is a 4xx', async () => {
    const watch = (body: string, method = 'POST'): Promise<Response> => fetch(`${nodeUrl(1)}/v1/stream/__ds/watch`, { method, headers: { 'content-type': 'application/json' }, ...(method === 'POST' ? { body } : {}) })
    for (const bad of ['not json', '{}', '{"pattern":"/jobs"}', '{"pattern":5}', '{"streams":"jobs/a"}']) {
      const res = await watch(bad)
      expect(res.status, bad).toBe(400)
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('BAD_REQUEST')
    }
    expect((await watch('', 'GET')).status).toBe(405)
    // A real watch: node 1's own jobs/* streams, listed, then `synced`, then a change.
    const aborted = new AbortController()
    const res = await fetch(`${nodeUrl(1)}/v1/stream/__ds/watch`, { method: 'POST', body: '{"pattern":"jobs/*"}', signal: aborted.signal })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('application/x-ndjson')
    const reader = res.body!.getReader()
    let text = ''
    const readUntil = async (needle: string): Promise<void> => {
      while (!text.includes(needle)) text += new TextDecoder().decode((await reader.read()).value)
    }
    await readUntil('{"synced":true}\n')
    const listed = text.split('\n').filter((line) => line.startsWith('{"p"')).map((line) => JSON.parse(line) as { p: string; i: number; t: number })
    expect(listed.length).toBeGreaterThan(0)
    for (const { p } of listed) expect((await fetch(`${proxy()}/v1/stream/${p}`, { method: 'HEAD' })).headers.get('ringstream-node')).toBe(nodeUrl(1))
    const first = listed[0]!
    const appended = await fetch(`${nodeUrl(1)}/v1/stream/${first.p}`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'watched;' })
    expect(appended.status).toBe(204)
    text = ''
    await readUntil(`"t":${first.t + 'watched;'.length}}`)
    aborted.abort()
  })
})
