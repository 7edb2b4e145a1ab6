// Scale-out behind a real HAProxy: deploy/local-cluster.sh starts three nodes and HAProxy
// (hashing the stream path). The official conformance suite passes through the proxy and
// its streams land on more than one node; a fork of a stream held by another node keeps
// every fork rule; a node killed with SIGKILL under load leaves the other nodes' streams
// writable and, once it is back, has every append it acknowledged.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { runConformanceTests } from '@durable-streams/server-conformance-tests'
import { beforeAll, describe, expect, test } from 'vitest'
import { formatOffset } from '../../src/protocol/offset.js'
import { eventually } from '../subscriptions/children.js'
import { haproxyMissing, useLocalCluster } from './local-cluster.js'

const NODES = 3
const LONG_POLL_TIMEOUT_MS = 1000

describe.skipIf(haproxyMissing !== undefined)(`a ${NODES}-node cluster behind HAProxy${haproxyMissing === undefined ? '' : ` (skipped: ${haproxyMissing})`}`, () => {
  // The reserved subscription block too: a subscription sees every node's streams.
  const config = { baseUrl: '', longPollTimeoutMs: LONG_POLL_TIMEOUT_MS, subscriptions: true }
  const cluster = useLocalCluster(NODES, [], ['--long-poll-timeout-ms', String(LONG_POLL_TIMEOUT_MS), '--webhooks'])
  const { dataDir, nodeUrl } = cluster
  const stream = (path: string): string => `${config.baseUrl}/v1/stream/${path}`

  beforeAll(() => {
    config.baseUrl = cluster.proxy()
  })

  /** The node holding a stream (HEAD names it). */
  async function holderOf(path: string): Promise<string> {
    const head = await fetch(stream(path), { method: 'HEAD' })
    expect(head.status).toBe(200)
    return head.headers.get('ringstream-node')!
  }

  describe('the official conformance suite through the proxy', () => {
    runConformanceTests(config)
  })

  test('the suite\'s streams landed on every node', async () => {
    for (let i = 1; i <= NODES; i++) {
      const text = await (await fetch(`${nodeUrl(i)}/metrics`)).text()
      const created = /ringstream_http_responses_total\{route="stream",method="PUT",code="201"\} (\d+)/.exec(text)
      expect(Number(created?.[1] ?? 0), `node ${i} created streams`).toBeGreaterThan(10)
    }
  })

  test('a fork of a stream another node holds: exact prefix at a sub-offset, its own appends, one node\'s delete rules', async () => {
    // Paths hash to nodes: find a source and a fork path that the proxy sends to different nodes.
    const probes = await Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        const path = `xfork-${process.pid}-${i}`
        expect((await fetch(stream(path), { method: 'PUT', headers: { 'content-type': 'text/plain' } })).status).toBe(201)
        return { path, node: await holderOf(path) }
      }),
    )
    const source = probes[0]!
    const other = probes.find((probe) => probe.node !== source.node)!
    for (const probe of probes.slice(1)) expect((await fetch(stream(probe.path), { method: 'DELETE' })).status).toBe(204)
    for (const part of ['abc', 'def', 'ghi']) expect((await fetch(stream(source.path), { method: 'POST', headers: { 'content-type': 'text/plain' }, body: part })).status).toBe(204)

    const fork = other.path
    const made = await fetch(stream(fork), {
      method: 'PUT',
      headers: { 'content-type': 'text/plain', 'stream-forked-from': `/v1/stream/${source.path}`, 'stream-fork-offset': formatOffset(3), 'stream-fork-sub-offset': '2' },
    })
    expect(made.status).toBe(201)
    expect(made.headers.get('location')).toBe(stream(fork))
    // The fork lives with its source; the node the proxy sends its path to forwards to it.
    expect(await holderOf(fork)).toBe(source.node)
    expect(await (await fetch(stream(fork))).text()).toBe('abcde')
    // Live reads through the forwarding node: a long-poll, then SSE.
    const poll = fetch(`${stream(fork)}?offset=${formatOffset(5)}&live=long-poll`)
    expect((await fetch(stream(fork), { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'XY' })).status).toBe(204)
    expect(await (await poll).text()).toBe('XY')
    const sse = await fetch(`${stream(fork)}?offset=-1&live=sse`)
    const reader = sse.body!.getReader()
    let events = ''
    while (!events.includes('abcdeXY')) events += Buffer.from((await reader.read()).value!).toString()
    await reader.cancel()
    expect(await (await fetch(stream(source.path))).text()).toBe('abcdefghi')

    // Deleting the source while the fork reads through it: 410 for the source, the fork stays.
    expect((await fetch(stream(source.path), { method: 'DELETE' })).status).toBe(204)
    expect((await fetch(stream(source.path))).status).toBe(410)
    expect((await fetch(stream(source.path), { method: 'PUT', headers: { 'content-type': 'text/plain' } })).status).toBe(409)
    expect(await (await fetch(stream(fork))).text()).toBe('abcdeXY')
    // The fork goes, and with it the soft-deleted source.
    expect((await fetch(stream(fork), { method: 'DELETE' })).status).toBe(204)
    expect((await fetch(stream(fork))).status).toBe(404)
    expect((await fetch(stream(source.path))).status).toBe(404)
    expect((await fetch(stream(source.path), { method: 'PUT', headers: { 'content-type': 'text/plain' } })).status).toBe(201)
  })

  test('SIGKILL of one node under load: the others keep taking appends; it comes back with every acknowledged one', { timeout: 60_000 }, async () => {
    const paths = Array.from({ length: 24 }, (_, i) => `load-${process.pid}-${i}`)
    for (const path of paths) expect((await fetch(stream(path), { method: 'PUT', headers: { 'content-type': 'text/plain' } })).status).toBe(201)
    const holders = new Map(await Promise.all(paths.map(async (path) => [path, await holderOf(path)] as const)))
    const victim = 2
    const victimUrl = nodeUrl(victim)
    expect([...holders.values()]).toContain(victimUrl)
    const acked = new Map(paths.map((path) => [path, [] as Array<{ end: number; body: string }>]))
    const refused = new Map(paths.map((path) => [path, 0]))
    // What each refusal was (status or error), for the message when a live node's stream had one.
    const reasons = new Map(paths.map((path) => [path, [] as string[]]))
    let killed = false
    const afterKill = new Map(paths.map((path) => [path, 0]))
    const stop = { value: false }
    const writers = paths.map(async (path, w) => {
      for (let k = 0; !stop.value; k++) {
        const body = `${w}:${k};`
        let failure = ''
        const res = await fetch(stream(path), { method: 'POST', headers: { 'content-type': 'text/plain' }, body }).catch((error: Error) => {
          failure = `${error.message} (${(error.cause as Error | undefined)?.message ?? ''})`
          return undefined
        })
        if (res?.status === 204) {
          acked.get(path)!.push({ end: Number(res.headers.get('stream-next-offset')!.split('_')[1]), body })
          if (killed) afterKill.set(path, afterKill.get(path)! + 1)
        } else {
          refused.set(path, refused.get(path)! + 1)
          reasons.get(path)!.push(res === undefined ? failure : `${res.status} ${await res.text()}`)
          await new Promise((resolve) => setTimeout(resolve, 20))
        }
      }
    })
    await new Promise((resolve) => setTimeout(resolve, 1000))
    process.kill(Number(readFileSync(join(dataDir, `node-${victim}.pid`), 'utf8')), 'SIGKILL')
    killed = true
    await new Promise((resolve) => setTimeout(resolve, 500))
    // The script starts the node again; wait until it serves.
    await eventually(async () => ((await fetch(`${victimUrl}/readyz`).catch(() => undefined))?.status === 200 ? true : undefined), 'the killed node to be back', 30_000)
    await new Promise((resolve) => setTimeout(resolve, 500))
    stop.value = true
    await Promise.all(writers)

    for (const path of paths) {
      const content = await (await fetch(stream(path))).text()
      for (const { end, body } of acked.get(path)!) expect(content.slice(end - body.length, end), `${path}: acknowledged append ${body}`).toBe(body)
      if (holders.get(path) !== victimUrl) {
        expect(refused.get(path), `${path} on a live node was never refused (${reasons.get(path)!.join('; ')})`).toBe(0)
        expect(afterKill.get(path)!, `${path} took appends after the kill`).toBeGreaterThan(0)
      }
    }
    const victimPaths = paths.filter((path) => holders.get(path) === victimUrl)
    expect(victimPaths.some((path) => refused.get(path)! > 0), 'the dead node\'s streams were unavailable for a while').toBe(true)
    expect(cluster.log).toContain(`node-${victim} exited; starting it again`)
  })
})
