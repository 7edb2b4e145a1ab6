// A leader cut off, not dead: every node reaches etcd, and is reached by its followers,
// through TCP gates the test controls. Cutting only the leader's two paths (to etcd, from its
// followers) while clients still reach it directly: the others elect a new leader once its
// lease runs out; nothing it answered 2xx is missing from the final log (it can answer
// nothing 2xx without its followers, and stops at its lease deadline); once healed it
// comes back as a follower and its copy matches.

import { describe, expect, test } from 'vitest'
import { type TestCluster, type TestNode, replicationTestable, sleep, useCluster } from './cluster-harness.js'

let cluster: TestCluster

async function appendTo(node: TestNode, body: string): Promise<number> {
  try {
    const response = await fetch(`${node.url}/v1/stream/log`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body, signal: AbortSignal.timeout(5000) })
    await response.arrayBuffer()
    return response.status
  } catch {
    return 0
  }
}

describe.skipIf(!replicationTestable())('a leader cut off from etcd and from its followers', () => {
  useCluster({ replicas: 3, gates: true }, { log: 'text/plain' }, (started) => (cluster = started))

  test('the majority side elects a new leader; the old one acknowledges nothing it loses; it rejoins once healed', async () => {
    const old = await cluster.leader()
    const oldEpoch = (await old.status())!.epoch
    const answered: string[] = []
    let stopWriting = false
    // Clients that still reach the old leader directly.
    const pinned = (async () => {
      for (let i = 0; !stopWriting; i++) {
        if ((await appendTo(old, `old-${i};`)) === 204) answered.push(`old-${i};`)
        await sleep(5)
      }
    })()
    await sleep(300)
    const cutAt = performance.now()
    old.etcdGate!.close()
    old.replicationGate!.close()
    let successor: TestNode | undefined
    while (successor === undefined) {
      for (const node of cluster.nodes) {
        const status = await node.status()
        if (node !== old && status?.role === 'leader' && status.problem === null) successor = node
      }
      if (performance.now() - cutAt > 20_000) throw new Error('no new leader on the majority side')
      await sleep(50)
    }
    const electedMs = performance.now() - cutAt
    for (let i = 0; i < 20; i++) expect(await appendTo(successor, `new-${i};`)).toBe(204)
    // The old leader, still reachable by clients, answers nothing 2xx now.
    const before = answered.length
    await sleep(500)
    expect(answered.length).toBe(before)
    stopWriting = true
    await pinned
    old.etcdGate!.heal()
    old.replicationGate!.heal()
    const deadline = Date.now() + 30_000
    let status = await old.status()
    while (!(status?.role === 'follower' && status.epoch > oldEpoch) && Date.now() < deadline) {
      await sleep(100)
      status = await old.status()
    }
    expect(status?.role).toBe('follower')
    await cluster.leader(2)
    await cluster.converged()
    const final = await (await fetch(`${successor.url}/v1/stream/log?offset=-1`)).text()
    console.log(`partition: new leader ${Math.round(electedMs)} ms after the cut; ${answered.length} appends the old leader acknowledged, all kept`)
    for (const body of answered) expect(final).toContain(body)
    for (let i = 0; i < 20; i++) expect(final).toContain(`new-${i};`)
  }, 90_000)
})
