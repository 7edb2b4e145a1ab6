// auth/tokens.ts — bearer tokens from a file (--auth-tokens): each line `TOKEN read|write
// PATH-PREFIX` grants reading (GET, HEAD) or writing (PUT, POST, DELETE, and reading) the
// streams whose path starts with PATH-PREFIX (`*` or `/` for all); `#` starts a comment; a
// token may have several lines. Tokens are kept as SHA-256 digests and a presented token is
// looked up by its digest, so no comparison runs over the token's own bytes (constant time
// in what an attacker controls). No or an unknown token is 401, a known one outside its
// grants 403. The file is read at startup (a bad line refuses to start, naming it) and again
// on SIGHUP (a bad file then keeps the previous grants, logged).

import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { StreamError } from '../protocol/errors.js'

export type Access = 'read' | 'write'

interface Grant {
  readonly access: Access
  readonly prefix: string
}

/** Tokens in a file are at least this long: short ones are guessable. */
const TOKEN_CHARS_MIN = 16

const digest = (token: string): string => createHash('sha256').update(token).digest('base64')

/** A grant's path prefix as written (`*` or `/` for every path, a leading `/` optional) as
 * stream paths are compared with it. Shared with auth/jwt.ts's claims. */
export function pathPrefix(written: string): string {
  return written === '*' || written === '/' ? '' : written.replace(/^\//, '')
}

/** Throws 403 unless one of `prefixes` (already pathPrefix()ed) covers `path`. */
export function requireGrant(prefixes: readonly string[], access: Access, path: string): void {
  if (!prefixes.some((prefix) => path.startsWith(prefix))) throw new StreamError('FORBIDDEN', `this token may not ${access} ${path}`)
}

export class TokenTable {
  private constructor(private readonly grants: ReadonlyMap<string, readonly Grant[]>) {}

  get size(): number {
    return this.grants.size
  }

  /** Parses the token file; throws naming the file and line of the first bad line. */
  static load(file: string): TokenTable {
    const grants = new Map<string, Grant[]>()
    const lines = readFileSync(file, 'utf8').split('\n')
    lines.forEach((raw, index) => {
      const line = raw.replace(/#.*/, '').trim()
      if (line === '') return
      const fail = (why: string): never => {
        throw new Error(`${file} line ${index + 1}: ${why} (expected TOKEN read|write PATH-PREFIX)`)
      }
      const fields = line.split(/\s+/)
      if (fields.length !== 3) fail(`${fields.length} fields`)
      const [token, access, prefix] = fields as [string, string, string]
      if (token.length < TOKEN_CHARS_MIN) fail(`a token shorter than ${TOKEN_CHARS_MIN} characters`)
      if (access !== 'read' && access !== 'write') fail(`access "${access}"`)
      const key = digest(token)
      const list = grants.get(key) ?? []
      list.push({ access: access as Access, prefix: pathPrefix(prefix) })
      grants.set(key, list)
    })
    return new TokenTable(grants)
  }

  /** Throws 401/403 unless `token` grants `access` to the stream at `path`. */
  check(token: string, access: Access, path: string): void {
    const grants = this.grants.get(digest(token))
    if (grants === undefined) throw new StreamError('UNAUTHORIZED', 'unknown token')
    requireGrant(grants.filter((grant) => grant.access === 'write' || access === 'read').map((grant) => grant.prefix), access, path)
  }
}

/** What a method needs. */
export function accessFor(method: string): Access {
  return method === 'GET' || method === 'HEAD' ? 'read' : 'write'
}
