// @durable-streams/state's StreamDB (on TanStack DB), used exactly as its README shows,
// against a real server: a one-shot load (live: false) of a State Protocol stream larger
// than one response piece, and the live modes, in every class. Before whole-stream catch-up
// responses, live: false loaded the first 1 MiB and preload() never finished.

import { createStateSchema } from '@durable-streams/state'
import { createStreamDB } from '@durable-streams/state/db'
import { expect, test } from 'vitest'
import { uniqueName } from '../helpers.js'
import { type ProtocolServer, inEveryClass } from '../protocol/servers.js'

interface User {
  readonly id: string
  readonly name: string
  readonly version: number
}

/** A Standard Schema validator that accepts a user object (no schema library needed). */
const userSchema = {
  '~standard': {
    version: 1 as const,
    vendor: 'ringstream-test',
    validate: (value: unknown) => {
      const user = value as User
      return typeof user?.id === 'string' && typeof user.version === 'number' ? { value: user } : { issues: [{ message: 'not a user' }] }
    },
  },
}

const schema = createStateSchema({ users: { schema: userSchema, type: 'user', primaryKey: 'id' } })

/** `rows` users inserted, every third updated and every tenth deleted: `changes` messages
 * of about 200 bytes, appended in batches of 1,000. Returns the rows that remain. */
async function fill(server: ProtocolServer, rows: number): Promise<{ url: string; expected: Map<string, User>; bytes: number }> {
  const url = server.stream(uniqueName('state'))
  expect((await fetch(url, { method: 'PUT', headers: { 'Content-Type': 'application/json' } })).status).toBe(201)
  const changes: unknown[] = []
  const expected = new Map<string, User>()
  const pad = 'x'.repeat(120)
  for (let i = 0; i < rows; i++) {
    const user = { id: `u${i}`, name: `user ${i} ${pad}`, version: 1 }
    changes.push({ type: 'user', key: user.id, value: user, headers: { operation: 'insert' } })
    expected.set(user.id, user)
  }
  for (let i = 0; i < rows; i += 3) {
    const user = { id: `u${i}`, name: `user ${i} renamed ${pad}`, version: 2 }
    changes.push({ type: 'user', key: user.id, value: user, headers: { operation: 'update' } })
    expected.set(user.id, user)
  }
  for (let i = 0; i < rows; i += 10) {
    changes.push({ type: 'user', key: `u${i}`, headers: { operation: 'delete' } })
    expected.delete(`u${i}`)
  }
  let bytes = 0
  for (let at = 0; at < changes.length; at += 1000) {
    const body = JSON.stringify(changes.slice(at, at + 1000))
    bytes += body.length
    expect((await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body })).status).toBe(204)
  }
  return { url, expected, bytes }
}

inEveryClass('StreamDB (@durable-streams/state) as its README shows', (server) => {
  test.each([false, 'long-poll', 'sse'] as const)('live: %s preloads every row of a 3 MB State Protocol stream', async (live) => {
    const { url, expected, bytes } = await fill(server, 10_000)
    expect(bytes).toBeGreaterThan(2 * 1024 * 1024)
    const db = createStreamDB({ streamOptions: { url, contentType: 'application/json' }, live, state: schema })
    try {
      await db.preload()
      const users = db.collections.users
      expect(users.size).toBe(expected.size)
      // Rows carry TanStack DB's own fields besides the value: compare the value's.
      for (const [id, user] of expected) expect(users.get(id)).toMatchObject(user)
      expect(users.get('u0')).toBeUndefined()
    } finally {
      db.close()
    }
  })
})
