// The etcd client (src/cluster/etcd.ts) against a real etcd (test/cluster/etcd-harness.ts):
// leases, a key that goes with its lease, create-if-absent by transaction, prefix reads,
// waiting for a change, and what it does when endpoints are dead, hung, paused, killed, or
// not etcd at all. Skipped where etcd is not installed, except with RINGSTREAM_REQUIRE_ETCD=1.

import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { Etcd, EtcdError, EtcdUnavailableError } from '../../src/cluster/etcd.js'
import { freePortBelowEphemeral } from '../helpers-ports.js'
import { etcdAvailable, type EtcdProcess, startEtcd } from './etcd-harness.js'

const available = etcdAvailable()
if (!available && process.env.RINGSTREAM_REQUIRE_ETCD === '1') throw new Error('RINGSTREAM_REQUIRE_ETCD=1 but /usr/bin/etcd is missing (Debian: apt-get install etcd-server)')

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** A URL where nothing listens. */
async function deadUrl(): Promise<string> {
  return `http://127.0.0.1:${await freePortBelowEphemeral()}`
}

/** An HTTP server standing in for a broken endpoint; counts the requests it gets. */
async function fakeEndpoint(answer: (respond: (status: number, body: string) => void) => void): Promise<{ url: string; requests: () => number; close: () => Promise<void> }> {
  let requests = 0
  const server: Server = createServer((request, response) => {
    requests++
    request.resume()
    answer((status, body) => response.writeHead(status, { 'content-type': 'application/json' }).end(body))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: () => requests,
    close: () => {
      server.closeAllConnections()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
}

describe.skipIf(!available)('etcd client against a real etcd', () => {
  let etcd: EtcdProcess
  let client: Etcd

  beforeAll(async () => {
    etcd = await startEtcd()
    client = new Etcd([etcd.url])
  }, 30_000)
  afterAll(() => etcd?.stop())

  test('grant, keep alive and revoke a lease; revoking it again is not an error', async () => {
    const lease = await client.grant(5)
    expect(lease).toEqual({ id: expect.stringMatching(/^\d+$/), ttlSeconds: 5 })
    expect(await client.keepAlive(lease.id)).toBe(5)
    await client.revoke(lease.id)
    expect(await client.keepAlive(lease.id)).toBe(0)
    await client.revoke(lease.id)
  })

  test('a key put under a lease disappears once the lease expires', async () => {
    const lease = await client.grant(2)
    const revision = await client.put('lease/key', 'held', lease.id)
    expect((await client.get('lease/key')).kv).toEqual({ key: 'lease/key', value: 'held', createRevision: revision, modRevision: revision, lease: lease.id })
    const started = Date.now()
    expect(await client.waitForChange('lease/key', revision, 5000)).toBe(true)
    expect(Date.now() - started).toBeLessThan(3500)
    expect((await client.get('lease/key')).kv).toBeUndefined()
    expect(await client.keepAlive(lease.id)).toBe(0)
  })

  test('a put under a lease that does not exist is an EtcdError with the gRPC code', async () => {
    const error = await client.put('lease/none', 'x', '12345').catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(EtcdError)
    expect(error).toMatchObject({ code: 5, message: 'etcdserver: requested lease not found' })
  })

  test('create-if-absent by transaction succeeds once; the second sees the existing kv', async () => {
    const create = (value: string) => client.txn([{ key: 'owner', target: 'CREATE', createRevision: 0 }], [{ put: { key: 'owner', value } }], [{ get: { key: 'owner' } }])
    const first = await create('a')
    expect(first).toEqual({ succeeded: true, revision: expect.any(Number), gets: [] })
    const second = await create('b')
    const owner = { key: 'owner', value: 'a', createRevision: first.revision, modRevision: first.revision, lease: undefined }
    expect(second).toEqual({ succeeded: false, revision: first.revision, gets: [[owner]] })

    // MOD and VALUE compares; a delete and reads (one by prefix) in the branch that runs.
    const notMine = await client.txn([{ key: 'owner', target: 'VALUE', result: 'NOT_EQUAL', value: 'a' }], [{ delete: { key: 'owner' } }])
    expect(notMine).toEqual({ succeeded: false, revision: first.revision, gets: [] })
    const compares = [
      { key: 'owner', target: 'VALUE', value: 'a' },
      { key: 'owner', target: 'MOD', result: 'LESS', modRevision: first.revision + 1 },
    ] as const
    const release = await client.txn([...compares], [{ get: { key: 'own', prefix: true } }, { delete: { key: 'owner' } }, { get: { key: 'owner' } }])
    expect(release).toEqual({ succeeded: true, revision: first.revision + 1, gets: [[owner], []] })
    await expect(client.txn([{ key: 'owner', target: 'MOD' }], [])).rejects.toThrow(RangeError)
  })

  test('getPrefix reads every key under a prefix, in key order, and nothing else', async () => {
    await client.put('p/b', '2')
    await client.put('p/a', '1')
    await client.put('p/c/d', '')
    await client.put('p/é', 'ünïcode')
    await client.put('p0', 'after the prefix')
    await client.put('o', 'before it')
    const revision = await client.put('p', 'the prefix itself')
    const { kvs, revision: read } = await client.getPrefix('p/')
    expect(read).toBe(revision)
    expect(kvs.map(({ key, value }) => [key, value])).toEqual([
      ['p/a', '1'],
      ['p/b', '2'],
      ['p/c/d', ''],
      ['p/é', 'ünïcode'],
    ])
    expect(await client.getPrefix('nothing/')).toEqual({ kvs: [], revision })
    expect((await client.getPrefix('')).kvs.map((kv) => kv.key)).toEqual(expect.arrayContaining(['o', 'p', 'p/a', 'p0']))
    expect(await client.delete('p/a')).toBe(revision + 1)
    expect(await client.delete('p/a')).toBe(revision + 1)
  })

  test('waitForChange wakes on a put and on a delete, at once for an earlier change, and is false at its timeout', async () => {
    const { revision: start } = await client.get('w/key')
    const onPut = client.waitForChange('w/key', start, 5000)
    await sleep(100)
    const put = await client.put('w/key', '1')
    expect(await onPut).toBe(true)

    const onDelete = client.waitForChange('w/key', put, 5000)
    await sleep(100)
    await client.put('w/other', 'not this key')
    await client.delete('w/key')
    expect(await onDelete).toBe(true)

    expect(await client.waitForChange('w/key', start, 5000)).toBe(true)
    const { revision: now } = await client.get('w/key')
    const started = Date.now()
    const quiet = client.waitForChange('w/key', now, 500)
    await client.put('w/other', 'still not this key')
    expect(await quiet).toBe(false)
    expect(Date.now() - started).toBeGreaterThanOrEqual(480)
  })

  test('with only a closed port, EtcdUnavailableError at once, naming the endpoint', async () => {
    const dead = await deadUrl()
    const alone = new Etcd([dead])
    const started = Date.now()
    const error = await alone.get('k').catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(EtcdUnavailableError)
    expect((error as Error).message).toContain(dead)
    expect((error as Error).message).toContain('ECONNREFUSED')
    await expect(alone.waitForChange('k', 1, 5000)).rejects.toBeInstanceOf(EtcdUnavailableError)
    expect(Date.now() - started).toBeLessThan(500)
  })

  test('a dead first endpoint fails over to the second, for calls and for waits', async () => {
    const both = new Etcd([await deadUrl(), etcd.url])
    const revision = await both.put('failover', 'yes')
    expect((await both.get('failover')).kv?.value).toBe('yes')
    const wait = new Etcd([await deadUrl(), etcd.url]).waitForChange('failover', revision, 5000)
    await sleep(100)
    await client.put('failover', 'changed')
    expect(await wait).toBe(true)
  })

  test('a hung endpoint costs one request timeout, then calls start at the one that answered', async () => {
    const hung = await fakeEndpoint(() => {})
    try {
      const both = new Etcd([hung.url, etcd.url], { requestTimeoutMs: 300 })
      const started = Date.now()
      await both.put('hung', '1')
      expect(Date.now() - started).toBeGreaterThanOrEqual(290)
      await both.get('hung')
      await both.txn([], [])
      expect(hung.requests()).toBe(1)
      const alone = new Etcd([hung.url], { requestTimeoutMs: 300 })
      await expect(alone.get('hung')).rejects.toThrow(/no etcd endpoint answered .*timeout/i)
      await expect(alone.waitForChange('hung', 1, 5000)).rejects.toBeInstanceOf(EtcdUnavailableError)
    } finally {
      await hung.close()
    }
  })

  test('an endpoint without a leader (gRPC UNAVAILABLE) or that is not etcd is passed over', async () => {
    const noLeader = await fakeEndpoint((respond) => respond(503, '{"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14}'))
    const notEtcd = await fakeEndpoint((respond) => respond(404, 'Not Found'))
    try {
      const client3 = new Etcd([noLeader.url, notEtcd.url, etcd.url])
      expect(await client3.put('passed-over', '1')).toEqual(expect.any(Number))
      expect([noLeader.requests(), notEtcd.requests()]).toEqual([1, 1])
      const error = await new Etcd([noLeader.url]).get('k').catch((caught: unknown) => caught)
      expect(error).toBeInstanceOf(EtcdUnavailableError)
      expect((error as Error).message).toContain('no leader')
    } finally {
      await noLeader.close()
      await notEtcd.close()
    }
  })
})

describe.skipIf(!available)('etcd client when its etcd is paused, killed and restarted', () => {
  let etcd: EtcdProcess
  beforeAll(async () => {
    etcd = await startEtcd()
  }, 30_000)
  afterAll(() => etcd?.stop())

  test('a paused etcd times out each call; resumed, it answers', async () => {
    const client = new Etcd([etcd.url], { requestTimeoutMs: 200 })
    await client.put('paused', 'before')
    await etcd.pause()
    try {
      const started = Date.now()
      await expect(client.get('paused')).rejects.toBeInstanceOf(EtcdUnavailableError)
      expect(Date.now() - started).toBeLessThan(1000)
    } finally {
      etcd.resume()
    }
    expect((await client.get('paused')).kv?.value).toBe('before')
  })

  test('a wait on a killed etcd rejects; restarted on the same URL, the data is there', async () => {
    const client = new Etcd([etcd.url])
    const revision = await client.put('durable', 'kept')
    const broken = expect(client.waitForChange('durable', revision, 10_000)).rejects.toBeInstanceOf(EtcdUnavailableError)
    await sleep(100)
    const pid = etcd.pid
    await etcd.kill()
    await broken
    await etcd.restart()
    expect(etcd.pid).not.toBe(pid)
    expect(await client.get('durable')).toEqual({ kv: expect.objectContaining({ value: 'kept', modRevision: revision }), revision })
  }, 30_000)
})
