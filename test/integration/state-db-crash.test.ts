// The official clients across a kill -9: StreamDB (@durable-streams/state) with optimistic
// actions confirmed by awaitTxId, exactly as its README writes them, against the real
// `ringstream` command in the fsync class. Every confirmed action is there after a SIGKILL
// and a restart on the same data directory and port, for a new one-shot load (live: false)
// and for a new live StreamDB, which confirms new actions (the one that was connected through
// the crash stops: this client version does not resume a dropped read).

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stream as readStream } from '@durable-streams/client'
import { createStateSchema } from '@durable-streams/state'
import { createStreamDB } from '@durable-streams/state/db'
import { afterAll, describe, expect, test } from 'vitest'
import { freePortBelowEphemeral } from '../helpers-ports.js'
import { ringstream, startup, useChildren } from '../process.js'

interface User {
  id: string
  name: string
  email: string
}

const userSchema = {
  '~standard': {
    version: 1 as const,
    vendor: 'ringstream-test',
    validate: (value: unknown) => (typeof (value as User)?.id === 'string' ? { value: value as User } : { issues: [{ message: 'not a user' }] }),
  },
}
const schema = createStateSchema({ users: { schema: userSchema, type: 'user', primaryKey: 'id' } })

function openDb(url: string, live: false | 'sse' | 'long-poll') {
  return createStreamDB({
    streamOptions: { url, contentType: 'application/json' },
    live,
    state: schema,
    actions: ({ db, stream }) => ({
      addUser: {
        onMutate: (user: User) => {
          db.collections.users.insert(user)
        },
        mutationFn: async (user: User) => {
          const txid = crypto.randomUUID()
          await stream.append(JSON.stringify(schema.users.insert({ value: user, headers: { txid } })))
          await db.utils.awaitTxId(txid, 10_000)
        },
      },
      updateUser: {
        onMutate: ({ id, updates }: { id: string; updates: Partial<User> }) => {
          db.collections.users.update(id, (draft) => {
            Object.assign(draft, updates)
          })
        },
        mutationFn: async ({ id, updates }: { id: string; updates: Partial<User> }) => {
          const txid = crypto.randomUUID()
          const current = db.collections.users.get(id) as User
          const value = { id: current.id, name: current.name, email: current.email, ...updates }
          await stream.append(JSON.stringify(schema.users.update({ value, oldValue: current, headers: { txid } })))
          await db.utils.awaitTxId(txid, 10_000)
        },
      },
    }),
  })
}

const dirs: string[] = []
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

describe('StreamDB and the client across kill -9 (fsync)', () => {
  const spawn = useChildren()

  test('confirmed optimistic actions survive a SIGKILL; a new live StreamDB catches up and confirms new ones', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ringstream-state-crash-'))
    dirs.push(dataDir)
    // A port below the ephemeral range: after the kill, an outgoing connection of this
    // process could otherwise be given the dead server's port as its own and hold it.
    const port = String(await freePortBelowEphemeral())
    let server = spawn(ringstream(['--port', port, '--data-dir', dataDir, '--durability', 'fsync', '--long-poll-timeout-ms', '1000']))
    const { url: base } = await startup(server)
    const url = `${base}/v1/stream/app/users`
    expect((await fetch(url, { method: 'PUT', headers: { 'Content-Type': 'application/json' } })).status).toBe(201)

    const expected = new Map<string, User>()
    const liveDb = openDb(url, 'sse')
    await liveDb.preload()
    for (let i = 0; i < 40; i++) {
      const user = { id: `u${i}`, name: `user ${i}`, email: `u${i}@example.com` }
      const tx = liveDb.actions.addUser(user)
      await tx.isPersisted.promise
      expected.set(user.id, user)
    }
    for (let i = 0; i < 40; i += 4) {
      const tx = liveDb.actions.updateUser({ id: `u${i}`, updates: { name: `renamed ${i}` } })
      await tx.isPersisted.promise
      expected.set(`u${i}`, { ...expected.get(`u${i}`)!, name: `renamed ${i}` })
    }

    server.kill('SIGKILL')
    await new Promise((resolve) => server.once('exit', resolve))
    server = spawn(ringstream(['--port', port, '--data-dir', dataDir, '--durability', 'fsync', '--long-poll-timeout-ms', '1000']))
    await startup(server)

    // A new one-shot load sees every confirmed action.
    const fresh = openDb(url, false)
    try {
      await fresh.preload()
      expect(fresh.collections.users.size).toBe(expected.size)
      for (const [id, user] of expected) expect(fresh.collections.users.get(id)).toMatchObject(user)
    } finally {
      fresh.close()
    }
    const raw = await readStream<{ key: string }>({ url, offset: '-1', live: false, json: true })
    expect((await raw.json()).length).toBe(40 + 10)

    // The StreamDB that was live through the crash has stopped: this client version ends its
    // read on a dropped connection ("Stream consumer closed unexpectedly") instead of
    // resuming at its offset. A new live StreamDB catches up and confirms new actions.
    liveDb.close()
    const resumed = openDb(url, 'sse')
    try {
      await resumed.preload()
      const after = { id: 'after', name: 'after the crash', email: 'after@example.com' }
      const tx = resumed.actions.addUser(after)
      await tx.isPersisted.promise
      expected.set(after.id, after)
      expect(resumed.collections.users.size).toBe(expected.size)
      for (const [id, user] of expected) expect(resumed.collections.users.get(id)).toMatchObject(user)
    } finally {
      resumed.close()
    }
    const again = await readStream<{ key: string }>({ url, offset: '-1', live: false, json: true })
    expect((await again.json()).map((change) => change.key).filter((key) => key === 'after')).toEqual(['after'])
  }, 60_000)
})
