// Webhook signing key rotation on a real server (PROTOCOL §6.5): after a restart with a new
// --webhook-signing-key, GET /v1/stream/__ds/jwks.json publishes the new key first and the
// replaced one beside it, so signatures made with the old key just before the restart still
// verify; row 6.5-8 of docs/protocol-coverage.md.

import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, expect, test } from 'vitest'
import { createServer } from '../../src/index.js'

const dir = mkdtempSync(join(tmpdir(), 'ringstream-key-rotation-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

async function publishedKids(signingKey: string): Promise<string[]> {
  const server = createServer({ port: 0, durability: 'fsync', io: 'fs', dataDir: join(dir, 'data'), webhookSigningKeyFile: signingKey })
  await server.listen()
  try {
    const res = await fetch(`${server.url}/v1/stream/__ds/jwks.json`)
    expect(res.status).toBe(200)
    return ((await res.json()) as { keys: Array<{ kid: string }> }).keys.map((key) => key.kid)
  } finally {
    await server.close()
  }
}

test('a restart with a new signing key publishes it first and keeps the replaced key in the JWK Set', async () => {
  const keys = ['a', 'b'].map((name) => {
    const file = join(dir, `${name}.pem`)
    writeFileSync(file, generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }) as string)
    return file
  })
  const [first] = await publishedKids(keys[0]!)
  expect(await publishedKids(keys[0]!)).toEqual([first])
  const rotated = await publishedKids(keys[1]!)
  expect(rotated.length).toBe(2)
  expect(rotated[1]).toBe(first)
  expect(rotated[0]).not.toBe(first)
  // Restarted again with the new key: both still published (the window runs from the rotation).
  expect(await publishedKids(keys[1]!)).toEqual(rotated)
})
