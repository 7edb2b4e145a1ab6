// subscriptions/keys.ts — the server's webhook signing key (Ed25519, published as a JWK
// Set, PROTOCOL §6.5) and the callback / claim tokens (§12.9). One private key per data
// directory, generated on first use and kept in <data-dir>/webhook-signing-key.pem (mode
// 0600), or given by the operator (--webhook-signing-key FILE): signatures verify across
// restarts. The token secret is derived from that key (HKDF), so tokens handed out before a
// restart stay valid and no second secret file exists. Memory mode keeps a key for the
// process's life only.

import { type KeyObject, createHash, createHmac, createPrivateKey, createPublicKey, generateKeyPairSync, hkdfSync, sign, timingSafeEqual } from 'node:crypto'
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs'
import { join } from 'node:path'

export const SIGNING_KEY_FILE = 'webhook-signing-key.pem'
/** The public keys published in the JWK Set: the current one and those it replaced, with
 * when they were replaced (PROTOCOL §6.5 key rotation). */
export const PUBLISHED_KEYS_FILE = 'webhook-signing-keys.json'
/** How long a replaced key stays in the JWK Set: a receiver accepts a signature for its
 * replay window (the conformance suite's receivers: 5 minutes), and deliveries signed just
 * before a restart with a new key are at most that old; an hour leaves room for slow clocks
 * and cached JWK Sets (served with max-age=300). */
export const REPLACED_KEY_PUBLISHED_MS = 60 * 60 * 1000

interface PublishedKey {
  readonly jwk: PublicJwk
  /** When a newer key replaced it; null: the current key. */
  readonly replacedAtMs: number | null
}

export interface PublicJwk {
  readonly kty: 'OKP'
  readonly crv: 'Ed25519'
  readonly kid: string
  readonly use: 'sig'
  readonly alg: 'EdDSA'
  readonly x: string
}

/** What a valid token says. */
export interface TokenClaims {
  /** The subscription incarnation it was issued for (id + creation nonce). */
  readonly subject: string
  readonly generation: number
  readonly wakeId: string
}

export type TokenCheck = { readonly ok: true; readonly claims: TokenClaims } | { readonly ok: false; readonly code: 'TOKEN_INVALID' | 'TOKEN_EXPIRED' }

/** Tokens outlive any lease (10 minutes at most): the lease and the generation fence them;
 * the expiry only bounds what a leaked token is worth. */
const TOKEN_LIFETIME_MS = 24 * 60 * 60 * 1000

export class SubscriptionKeys {
  readonly jwk: PublicJwk
  private readonly tokenSecret: Buffer

  /** Keys this one replaced, still published (see REPLACED_KEY_PUBLISHED_MS). */
  private replaced: readonly PublishedKey[] = []

  private constructor(private readonly privateKey: KeyObject) {
    const x = (createPublicKey(privateKey).export({ format: 'jwk' }) as { x: string }).x
    // RFC 7638 thumbprint: stable for the key's life, derived from the key material.
    const thumbprint = createHash('sha256').update(JSON.stringify({ crv: 'Ed25519', kty: 'OKP', x })).digest('base64url')
    this.jwk = { kty: 'OKP', crv: 'Ed25519', kid: `ds_${thumbprint}`, use: 'sig', alg: 'EdDSA', x }
    const der = privateKey.export({ format: 'der', type: 'pkcs8' })
    this.tokenSecret = Buffer.from(hkdfSync('sha256', der, 'ringstream', 'subscription tokens', 32))
  }

  /** The operator's key file, else the data directory's (made if missing), else (memory
   * mode: `dataDir` undefined) a key for this process only. */
  static load(dataDir: string | undefined, keyFile: string | undefined, nowMs = Date.now()): SubscriptionKeys {
    const keys = SubscriptionKeys.current(dataDir, keyFile)
    if (dataDir !== undefined) keys.recordPublished(join(dataDir, PUBLISHED_KEYS_FILE), nowMs)
    return keys
  }

  private static current(dataDir: string | undefined, keyFile: string | undefined): SubscriptionKeys {
    if (keyFile !== undefined) return new SubscriptionKeys(readKey(keyFile))
    if (dataDir === undefined) return new SubscriptionKeys(generateKeyPairSync('ed25519').privateKey)
    const path = join(dataDir, SIGNING_KEY_FILE)
    let pem: string | undefined
    try {
      pem = readFileSync(path, 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    }
    if (pem !== undefined) return new SubscriptionKeys(readKey(path, pem))
    const { privateKey } = generateKeyPairSync('ed25519')
    writeDurably(path, privateKey.export({ format: 'pem', type: 'pkcs8' }) as string)
    return new SubscriptionKeys(privateKey)
  }

  get kid(): string {
    return this.jwk.kid
  }

  /** The JWK Set's keys at `nowMs`: the current one, then those it replaced less than
   * REPLACED_KEY_PUBLISHED_MS ago. */
  published(nowMs: number): PublicJwk[] {
    const keys = [this.jwk]
    for (const { jwk, replacedAtMs } of this.replaced) if (replacedAtMs !== null && nowMs - replacedAtMs < REPLACED_KEY_PUBLISHED_MS) keys.push(jwk)
    return keys
  }

  /** Reads which keys were published before; when the current key is new (the operator
   * rotated it), the previous current key becomes a replaced one, published for a while
   * longer. Writes the record back when it changed. */
  private recordPublished(path: string, nowMs: number): void {
    let before: PublishedKey[] = []
    try {
      const parsed = JSON.parse(readFileSync(path, 'utf8')) as { keys?: PublishedKey[] }
      if (Array.isArray(parsed.keys)) before = parsed.keys.filter((key) => typeof key?.jwk?.kid === 'string')
    } catch (error) {
      // Missing (a new directory, or one from before rotation was recorded): nothing replaced.
      // Damaged: rewritten below; at worst a replaced key leaves the JWK Set early.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' && !(error instanceof SyntaxError)) throw error
    }
    const replaced = before
      .filter((key) => key.jwk.kid !== this.kid)
      .map((key) => ({ jwk: key.jwk, replacedAtMs: key.replacedAtMs ?? nowMs }))
      .filter((key) => nowMs - key.replacedAtMs < REPLACED_KEY_PUBLISHED_MS)
    this.replaced = replaced
    const after: PublishedKey[] = [{ jwk: this.jwk, replacedAtMs: null }, ...replaced]
    if (JSON.stringify(after) !== JSON.stringify(before)) writeDurably(path, `${JSON.stringify({ keys: after })}\n`)
  }

  /** The Webhook-Signature header for a body: Ed25519 over `<t>.<body>`. */
  signatureHeader(body: string, nowMs: number): string {
    const t = Math.floor(nowMs / 1000)
    const signature = sign(null, Buffer.from(`${t}.${body}`), this.privateKey).toString('base64url')
    return `t=${t},kid=${this.kid},ed25519=${signature}`
  }

  issueToken(claims: TokenClaims, nowMs: number): string {
    const payload = Buffer.from(JSON.stringify([claims.subject, claims.generation, claims.wakeId, nowMs + TOKEN_LIFETIME_MS])).toString('base64url')
    return `${payload}.${this.mac(payload)}`
  }

  checkToken(token: string, nowMs: number): TokenCheck {
    const dot = token.indexOf('.')
    if (dot <= 0) return { ok: false, code: 'TOKEN_INVALID' }
    const payload = token.slice(0, dot)
    const given = Buffer.from(token.slice(dot + 1), 'base64url')
    const expected = Buffer.from(this.mac(payload), 'base64url')
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, code: 'TOKEN_INVALID' }
    let fields: unknown
    try {
      fields = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))
    } catch {
      return { ok: false, code: 'TOKEN_INVALID' }
    }
    if (!Array.isArray(fields) || fields.length !== 4) return { ok: false, code: 'TOKEN_INVALID' }
    const [subject, generation, wakeId, expiresAtMs] = fields as [string, number, string, number]
    if (nowMs >= expiresAtMs) return { ok: false, code: 'TOKEN_EXPIRED' }
    return { ok: true, claims: { subject, generation, wakeId } }
  }

  private mac(payload: string): string {
    return createHmac('sha256', this.tokenSecret).update(payload).digest('base64url')
  }
}

function readKey(path: string, pem = readFileSync(path, 'utf8')): KeyObject {
  let key: KeyObject
  try {
    key = createPrivateKey(pem)
  } catch (error) {
    throw new Error(`webhook signing key ${path} is not a PEM private key: ${(error as Error).message}`)
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`webhook signing key ${path} is ${key.asymmetricKeyType}, not Ed25519`)
  return key
}

/** Write to a temporary file, sync, rename: a crash leaves the old file or the whole new one. */
function writeDurably(path: string, text: string): void {
  const tmp = `${path}.tmp`
  const fd = openSync(tmp, 'w', 0o600)
  try {
    writeSync(fd, text)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(tmp, path)
  const dir = openSync(join(path, '..'), 'r')
  try {
    fsyncSync(dir)
  } finally {
    closeSync(dir)
  }
}
