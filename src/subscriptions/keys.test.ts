import { createPublicKey, generateKeyPairSync, verify } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { PUBLISHED_KEYS_FILE, REPLACED_KEY_PUBLISHED_MS, SIGNING_KEY_FILE, SubscriptionKeys } from './keys.js'

const dir = mkdtempSync(join(tmpdir(), 'ringstream-keys-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('subscription keys', () => {
  it('makes one key per data directory, private to its owner, and loads the same one again', () => {
    const first = SubscriptionKeys.load(dir, undefined)
    expect(statSync(join(dir, SIGNING_KEY_FILE)).mode & 0o777).toBe(0o600)
    const again = SubscriptionKeys.load(dir, undefined)
    expect(again.kid).toBe(first.kid)
    expect(first.kid).toMatch(/^ds_[A-Za-z0-9_-]{43}$/)
    const token = first.issueToken({ subject: 's:1', generation: 3, wakeId: 'w_x' }, 1000)
    expect(again.checkToken(token, 2000)).toEqual({ ok: true, claims: { subject: 's:1', generation: 3, wakeId: 'w_x' } })
  })

  it('signs <t>.<body> so the published JWK verifies it', () => {
    const keys = SubscriptionKeys.load(undefined, undefined)
    const header = keys.signatureHeader('{"a":1}', 1_700_000_000_123)
    const match = /^t=(\d+),kid=([^,]+),ed25519=([A-Za-z0-9_-]+)$/.exec(header)!
    expect(match[1]).toBe('1700000000')
    expect(match[2]).toBe(keys.kid)
    const key = createPublicKey({ key: { ...keys.jwk }, format: 'jwk' })
    expect(verify(null, Buffer.from(`${match[1]}.{"a":1}`), key, Buffer.from(match[3]!, 'base64url'))).toBe(true)
    expect(verify(null, Buffer.from(`${match[1]}.{"a":2}`), key, Buffer.from(match[3]!, 'base64url'))).toBe(false)
  })

  it('refuses tampered, foreign and expired tokens', () => {
    const keys = SubscriptionKeys.load(undefined, undefined)
    const other = SubscriptionKeys.load(undefined, undefined)
    const token = keys.issueToken({ subject: 's:1', generation: 1, wakeId: 'w_a' }, 0)
    const [payload, mac] = token.split('.') as [string, string]
    const forged = Buffer.from(JSON.stringify(['s:1', 2, 'w_a', 1e15])).toString('base64url')
    expect(keys.checkToken(`${forged}.${mac}`, 1).ok).toBe(false)
    expect(other.checkToken(token, 1)).toEqual({ ok: false, code: 'TOKEN_INVALID' })
    expect(keys.checkToken(`${payload}.`, 1)).toEqual({ ok: false, code: 'TOKEN_INVALID' })
    expect(keys.checkToken('garbage', 1)).toEqual({ ok: false, code: 'TOKEN_INVALID' })
    expect(keys.checkToken(token, 25 * 60 * 60 * 1000)).toEqual({ ok: false, code: 'TOKEN_EXPIRED' })
  })

  it('takes an operator key file and refuses one that is not Ed25519', () => {
    expect(() => SubscriptionKeys.load(undefined, join(dir, 'missing.pem'))).toThrow()
    const made = SubscriptionKeys.load(undefined, join(dir, SIGNING_KEY_FILE))
    expect(made.kid).toBe(SubscriptionKeys.load(dir, undefined).kid)
  })
})

describe('key rotation (PROTOCOL §6.5: old public keys stay published through the replay window)', () => {
  const pem = (): string => generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }) as string

  it('a replaced key stays in the JWK Set for REPLACED_KEY_PUBLISHED_MS after the key changed, across restarts, then leaves it', () => {
    const rotating = mkdtempSync(join(tmpdir(), 'ringstream-rotation-'))
    const keyA = join(rotating, 'a.pem')
    const keyB = join(rotating, 'b.pem')
    writeFileSync(keyA, pem())
    writeFileSync(keyB, pem())
    const t0 = 1_800_000_000_000
    const a = SubscriptionKeys.load(rotating, keyA, t0)
    expect(a.published(t0).map((jwk) => jwk.kid)).toEqual([a.kid])
    const b = SubscriptionKeys.load(rotating, keyB, t0 + 1000)
    expect(b.kid).not.toBe(a.kid)
    expect(b.published(t0 + 1000).map((jwk) => jwk.kid)).toEqual([b.kid, a.kid])
    // A restart within the window keeps publishing A, replaced at the first load with B.
    const bAgain = SubscriptionKeys.load(rotating, keyB, t0 + 10 * 60 * 1000)
    expect(bAgain.published(t0 + 10 * 60 * 1000).map((jwk) => jwk.kid)).toEqual([b.kid, a.kid])
    expect(bAgain.published(t0 + 1000 + REPLACED_KEY_PUBLISHED_MS).map((jwk) => jwk.kid)).toEqual([b.kid])
    // Past the window the record forgets A.
    SubscriptionKeys.load(rotating, keyB, t0 + 2 * REPLACED_KEY_PUBLISHED_MS)
    const record = JSON.parse(readFileSync(join(rotating, PUBLISHED_KEYS_FILE), 'utf8')) as { keys: Array<{ jwk: { kid: string } }> }
    expect(record.keys.map((key) => key.jwk.kid)).toEqual([b.kid])
    rmSync(rotating, { recursive: true, force: true })
  })
})
