// auth/jwt.ts — JWT bearer tokens (--auth-jwks FILE|URL), verified with jose against a JSON
// Web Key Set: a file (read at startup and on SIGHUP) or an https URL (fetched and cached by
// jose, refetched when a token names a key it does not know). The signature, `exp` and
// `nbf` are checked; the grants are two claims of path prefixes: `ds_read` (GET, HEAD) and
// `ds_write` (PUT, POST, DELETE, and reading), `*` for every path. A bad or expired token is
// 401, a valid one without a grant for the path 403.

import { readFileSync } from 'node:fs'
import { type JWTPayload, type JWTVerifyGetKey, createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify } from 'jose'
import { StreamError } from '../protocol/errors.js'
import { type Access, pathPrefix, requireGrant } from './tokens.js'

/** Signature algorithms accepted (asymmetric only: the server holds no secret). */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']

function prefixes(payload: JWTPayload, claim: string): string[] {
  const value = payload[claim]
  if (value === undefined) return []
  const list = Array.isArray(value) ? value : [value]
  return list.filter((item): item is string => typeof item === 'string').map(pathPrefix)
}

export class JwtVerifier {
  private constructor(
    private readonly source: string,
    private keys: JWTVerifyGetKey,
  ) {}

  static load(source: string): JwtVerifier {
    return new JwtVerifier(source, JwtVerifier.keysOf(source))
  }

  private static keysOf(source: string): JWTVerifyGetKey {
    if (/^https?:\/\//.test(source)) return createRemoteJWKSet(new URL(source))
    let set: unknown
    try {
      set = JSON.parse(readFileSync(source, 'utf8'))
    } catch (error) {
      throw new Error(`--auth-jwks ${source}: ${(error as Error).message}`)
    }
    if (typeof set !== 'object' || set === null || !Array.isArray((set as { keys?: unknown }).keys)) throw new Error(`--auth-jwks ${source}: not a JSON Web Key Set ({"keys": [...]})`)
    return createLocalJWKSet(set as Parameters<typeof createLocalJWKSet>[0])
  }

  /** Reads a key file again (SIGHUP); a URL needs nothing (jose refetches unknown keys). */
  reload(): void {
    if (!/^https?:\/\//.test(this.source)) this.keys = JwtVerifier.keysOf(this.source)
  }

  async check(token: string, access: Access, path: string): Promise<void> {
    let payload: JWTPayload
    try {
      ;({ payload } = await jwtVerify(token, this.keys, { algorithms: ALGORITHMS }))
    } catch (error) {
      const why = error instanceof errors.JWTExpired ? 'the token has expired' : error instanceof errors.JOSEError ? `the token is not valid (${error.code})` : 'the token is not valid'
      throw new StreamError('UNAUTHORIZED', why)
    }
    const grants = access === 'read' ? [...prefixes(payload, 'ds_read'), ...prefixes(payload, 'ds_write')] : prefixes(payload, 'ds_write')
    requireGrant(grants, access, path)
  }
}
