// With authentication on, reads a shared cache could keep are marked private: a CDN or proxy
// must not hand one token's response to another client (PROTOCOL §10.1, §12.2, §12.7; row
// 12.7-3 of docs/protocol-coverage.md). Without authentication they stay public.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, test } from 'vitest'
import { uniqueName, useServer } from '../helpers.js'

const TOKEN = 'cache-test-token-0123456789'
const dir = mkdtempSync(join(tmpdir(), 'ringstream-auth-cache-'))
const tokens = join(dir, 'tokens')
writeFileSync(tokens, `${TOKEN} write *\n`)
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const open = useServer()
const guarded = useServer({ authTokensFile: tokens })

async function closedRead(server: typeof open, headers: Record<string, string>): Promise<Response> {
  const url = server.stream(uniqueName('cache'))
  expect((await fetch(url, { method: 'PUT', headers: { ...headers, 'Content-Type': 'text/plain', 'Stream-Closed': 'true' }, body: 'final' })).status).toBe(201)
  return fetch(`${url}?offset=-1`, { headers })
}

test('a cacheable read is public without authentication and private with it', async () => {
  const plain = await closedRead(open, {})
  expect(plain.headers.get('cache-control')).toMatch(/^public, max-age=60/)
  const authorized = await closedRead(guarded, { Authorization: `Bearer ${TOKEN}` })
  expect(authorized.status).toBe(200)
  expect(authorized.headers.get('cache-control')).toMatch(/^private, max-age=60/)
  expect(authorized.headers.get('cache-control')).not.toMatch(/public/)
})
