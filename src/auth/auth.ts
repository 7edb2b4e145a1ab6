// auth/auth.ts — who may do what to which stream: the bearer token of a request checked
// against the token file (auth/tokens.ts) or, when it is a JWT and --auth-jwks is set,
// against the key set (auth/jwt.ts). Without either flag no request is checked.

import { StreamError } from '../protocol/errors.js'
import { JwtVerifier } from './jwt.js'
import { type Access, TokenTable } from './tokens.js'

/** header.payload.signature, base64url. */
const JWT = /^[\w-]+\.[\w-]+\.[\w-]+$/

export class Authenticator {
  private constructor(
    private readonly tokensFile: string | undefined,
    private tokens: TokenTable | undefined,
    private readonly jwt: JwtVerifier | undefined,
  ) {}

  /** Undefined when neither source is configured. Throws on a bad file (startup refuses). */
  static load(tokensFile: string | undefined, jwks: string | undefined): Authenticator | undefined {
    if (tokensFile === undefined && jwks === undefined) return undefined
    return new Authenticator(tokensFile, tokensFile === undefined ? undefined : TokenTable.load(tokensFile), jwks === undefined ? undefined : JwtVerifier.load(jwks))
  }

  /** Reads the token file and a JWKS file again; throws (the previous grants stay) on a bad one. */
  reload(): number {
    if (this.tokensFile !== undefined) this.tokens = TokenTable.load(this.tokensFile)
    this.jwt?.reload()
    return this.tokens?.size ?? 0
  }

  /** Throws 401/403 (or resolves) unless `authorization` grants `access` to `path`. */
  check(authorization: string, access: Access, path: string): void | Promise<void> {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization)
    if (match === null) throw new StreamError('UNAUTHORIZED', authorization === '' ? 'an Authorization: Bearer token is required' : 'the Authorization header is not a Bearer token')
    const token = match[1]!
    if (this.jwt !== undefined && JWT.test(token)) return this.jwt.check(token, access, path)
    if (this.tokens === undefined) throw new StreamError('UNAUTHORIZED', 'unknown token')
    this.tokens.check(token, access, path)
  }
}
