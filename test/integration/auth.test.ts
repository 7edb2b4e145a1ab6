// Integration: bearer tokens (--auth-tokens) on a real server process: the 401/403 matrix,
// what needs no token (CORS preflight, /healthz), the official client with a token, and a
// SIGHUP reload (a bad file keeps the tokens in force).

import { DurableStream } from '@durable-streams/client'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, test } from 'vitest'
import { ringstream, startup, useChildren } from '../process.js'

const spawnChild = useChildren()
const WRITER = 'writer-token-0123456789'
const READER = 'reader-token-0123456789'
const LATER = 'later-token-0123456789ab'

test('no or a bad token is 401, a token outside its grants 403; preflight and /healthz need none; SIGHUP reloads', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ringstream-auth-'))
  const file = join(dir, 'tokens')
  writeFileSync(file, `# team chat\n${WRITER} write chat/\n${READER} read chat/\n${READER} read public/   # a second grant\n`)
  const server = spawnChild(ringstream(['--port', '0', '--data-dir', join(dir, 'data'), '--auth-tokens', file]))
  const { url } = await startup(server)
  const stream = (path: string): string => `${url}/v1/stream/${path}`
  const as = (token: string | undefined, init: RequestInit = {}): RequestInit => ({ ...init, headers: { ...(init.headers as Record<string, string>), ...(token === undefined ? {} : { Authorization: `Bearer ${token}` }) } })
  const put: RequestInit = { method: 'PUT', headers: { 'Content-Type': 'text/plain' } }

  const none = await fetch(stream('chat/a'), put)
  expect(none.status).toBe(401)
  expect(none.headers.get('www-authenticate')).toBe('Bearer')
  expect(((await none.json()) as { error: { code: string } }).error.code).toBe('UNAUTHORIZED')
  expect((await fetch(stream('chat/a'), as('not-a-known-token-at-all', put))).status).toBe(401)
  expect((await fetch(stream('chat/a'), { ...put, headers: { ...put.headers, Authorization: `Basic ${WRITER}` } })).status).toBe(401)
  const readerWrites = await fetch(stream('chat/a'), as(READER, put))
  expect(readerWrites.status).toBe(403)
  expect(((await readerWrites.json()) as { error: { code: string } }).error.code).toBe('FORBIDDEN')
  expect((await fetch(stream('other/a'), as(WRITER, put))).status).toBe(403)
  expect((await fetch(stream('chat/a'), as(WRITER, put))).status).toBe(201)
  expect((await fetch(stream('chat/a'), as(WRITER, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'hello' }))).status).toBe(204)
  expect(await (await fetch(stream('chat/a'), as(READER))).text()).toBe('hello')
  expect((await fetch(stream('chat/a'), as(READER, { method: 'HEAD' }))).status).toBe(200)
  expect((await fetch(stream('chat/a'), as(READER, { method: 'DELETE' }))).status).toBe(403)
  expect((await fetch(stream('public/x'), as(READER))).status).toBe(404)
  expect((await fetch(stream('private/x'), as(READER))).status).toBe(403)
  expect((await fetch(stream('chat/a'), { method: 'OPTIONS', headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'POST' } })).status).toBe(204)
  expect((await fetch(`${url}/healthz`)).status).toBe(200)

  // The official client, sending its token as a header.
  const client = await DurableStream.create({ url: stream('chat/client'), contentType: 'application/json', headers: { Authorization: `Bearer ${WRITER}` } })
  await client.append(JSON.stringify({ n: 1 }))
  expect(await (await client.stream({ live: false })).json()).toEqual([{ n: 1 }])

  // SIGHUP: the new file is in force (READER gone, LATER added); a bad file changes nothing.
  writeFileSync(file, `${WRITER} write chat/\n${LATER} read *\n`)
  server.kill('SIGHUP')
  let reloaded = false
  for (let i = 0; i < 100 && !reloaded; i++) {
    reloaded = (await fetch(stream('chat/a'), as(LATER))).status === 200
    if (!reloaded) await new Promise((resolve) => setTimeout(resolve, 50))
  }
  expect(reloaded).toBe(true)
  expect((await fetch(stream('chat/a'), as(READER))).status).toBe(401)
  writeFileSync(file, `${LATER} sudo *\n`)
  server.kill('SIGHUP')
  await new Promise((resolve) => setTimeout(resolve, 300))
  expect((await fetch(stream('chat/a'), as(LATER))).status).toBe(200)
  expect((await fetch(stream('chat/a'), as(WRITER, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: '!' }))).status).toBe(204)
  server.kill('SIGTERM')
  rmSync(dir, { recursive: true, force: true })
})

test('--auth-query-token on: a read may carry its token as ?access_token=, a write may not; off, the parameter is no token', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ringstream-auth-'))
  const file = join(dir, 'tokens')
  writeFileSync(file, `${WRITER} write chat/\n${READER} read chat/\n`)
  const start = async (flag: 'on' | 'off', data: string): Promise<string> =>
    (await startup(spawnChild(ringstream(['--port', '0', '--data-dir', join(dir, data), '--auth-tokens', file, '--auth-query-token', flag])))).url
  const on = await start('on', 'on')
  const stream = `${on}/v1/stream/chat/q`
  expect((await fetch(stream, { method: 'PUT', headers: { 'Content-Type': 'text/plain', Authorization: `Bearer ${WRITER}` } })).status).toBe(201)
  expect((await fetch(`${stream}?access_token=${WRITER}`, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'x' })).status).toBe(401)
  expect((await fetch(stream, { method: 'POST', headers: { 'Content-Type': 'text/plain', Authorization: `Bearer ${WRITER}` }, body: 'hello' })).status).toBe(204)
  const read = await fetch(`${stream}?offset=-1&access_token=${READER}`)
  expect(read.status).toBe(200)
  expect(await read.text()).toBe('hello')
  expect((await fetch(`${stream}?access_token=${READER}`, { method: 'HEAD' })).status).toBe(200)
  expect((await fetch(`${stream}?offset=-1&access_token=not-a-known-token-at-all`)).status).toBe(401)
  expect((await fetch(`${stream}?offset=-1&access_token=%E0%A4%A`)).status).toBe(401)
  expect((await fetch(`${on}/v1/stream/other/q?access_token=${READER}`)).status).toBe(403)
  // A header, when there is one, is the credential.
  expect((await fetch(`${stream}?offset=-1&access_token=${READER}`, { headers: { Authorization: 'Bearer not-a-known-token-at-all' } })).status).toBe(401)
  // Default (off): the parameter is ignored.
  const off = await start('off', 'off')
  expect((await fetch(`${off}/v1/stream/chat/q?offset=-1&access_token=${READER}`)).status).toBe(401)
  rmSync(dir, { recursive: true, force: true })
})

test('a bad token file refuses to start, naming the line', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ringstream-auth-'))
  const file = join(dir, 'tokens')
  writeFileSync(file, `${WRITER} write chat/\nshort read *\n`)
  const child = spawnChild(ringstream(['--port', '0', '--data-dir', join(dir, 'data'), '--auth-tokens', file]))
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const code = await new Promise((resolve) => child.on('exit', resolve))
  expect(code).toBe(1)
  expect(stderr).toContain(`${file} line 2: a token shorter than 16 characters`)
  rmSync(dir, { recursive: true, force: true })
})

test('JWT bearer tokens against a JWKS file: right key, wrong key, expired, grants by claim, key rotation on SIGHUP', async () => {
  const { SignJWT, exportJWK, generateKeyPair } = await import('jose')
  const dir = mkdtempSync(join(tmpdir(), 'ringstream-jwt-'))
  const jwksFile = join(dir, 'jwks.json')
  const key = async (kid: string) => {
    const pair = await generateKeyPair('ES256')
    return { kid, ...pair, jwk: { ...(await exportJWK(pair.publicKey)), kid, alg: 'ES256', use: 'sig' } }
  }
  const [current, stranger, next] = await Promise.all([key('k1'), key('k2'), key('k3')])
  writeFileSync(jwksFile, JSON.stringify({ keys: [current.jwk] }))
  const sign = (signer: typeof current, claims: Record<string, unknown>, expires = '5m') =>
    new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: signer.kid }).setIssuedAt().setExpirationTime(expires).sign(signer.privateKey)
  const server = spawnChild(ringstream(['--port', '0', '--data-dir', join(dir, 'data'), '--auth-jwks', jwksFile]))
  const { url } = await startup(server)
  const stream = (path: string): string => `${url}/v1/stream/${path}`
  const put = (token: string, path: string): Promise<Response> => fetch(stream(path), { method: 'PUT', headers: { 'Content-Type': 'text/plain', Authorization: `Bearer ${token}` } })
  const get = (token: string, path: string): Promise<Response> => fetch(stream(path), { headers: { Authorization: `Bearer ${token}` } })

  const writer = await sign(current, { sub: 'alice', ds_write: ['chat/alice/'], ds_read: ['chat/'] })
  expect((await put(writer, 'chat/alice/1')).status).toBe(201)
  expect((await put(writer, 'chat/bob/1')).status).toBe(403)
  // A body sent with a JWT arrives whole though the token is checked asynchronously.
  const body = 'x'.repeat(300_000)
  expect((await fetch(stream('chat/alice/1'), { method: 'POST', headers: { 'Content-Type': 'text/plain', Authorization: `Bearer ${writer}` }, body })).status).toBe(204)
  expect(await (await get(writer, 'chat/alice/1')).text()).toBe(body)
  expect((await get(writer, 'news/1')).status).toBe(403)
  const reader = await sign(current, { ds_read: '*' })
  expect((await get(reader, 'chat/alice/1')).status).toBe(200)
  expect((await put(reader, 'chat/alice/2')).status).toBe(403)
  const wrongKey = await sign(stranger, { ds_write: '*' })
  const refused = await put(wrongKey, 'chat/alice/3')
  expect(refused.status).toBe(401)
  expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('UNAUTHORIZED')
  const expired = await sign(current, { ds_write: "*" }, "-1m")
  const late = await put(expired, 'chat/alice/4')
  expect(late.status).toBe(401)
  expect(((await late.json()) as { error: { message: string } }).error.message).toBe('the token has expired')
  const tampered = `${writer.slice(0, -4)}${writer.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`
  expect((await put(tampered, 'chat/alice/5')).status).toBe(401)
  // Not a JWT and no token file: unknown.
  expect((await put('plain-token-without-dots', 'chat/alice/6')).status).toBe(401)

  // Key rotation: the new set is in force after SIGHUP; the old key's tokens are refused.
  writeFileSync(jwksFile, JSON.stringify({ keys: [next.jwk] }))
  server.kill('SIGHUP')
  const rotated = await sign(next, { ds_write: '*' })
  let accepted = false
  for (let i = 0; i < 100 && !accepted; i++) {
    accepted = (await put(rotated, `chat/rotated/${i}`)).status === 201
    if (!accepted) await new Promise((resolve) => setTimeout(resolve, 50))
  }
  expect(accepted).toBe(true)
  expect((await put(writer, 'chat/alice/7')).status).toBe(401)
  server.kill('SIGTERM')
  rmSync(dir, { recursive: true, force: true })
})

test('subscriptions under auth: managing needs a grant on __ds/subscriptions/<id>; acks carry the wake token; the JWK Set is public', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ringstream-auth-subs-'))
  const file = join(dir, 'tokens')
  writeFileSync(file, `${WRITER} write jobs/\n${WRITER} write wake/\n${WRITER} write __ds/subscriptions/team-\n${READER} read __ds/subscriptions/\n`)
  const server = spawnChild(ringstream(['--port', '0', '--data-dir', join(dir, 'data'), '--auth-tokens', file]))
  const { url } = await startup(server)
  const at = (path: string): string => `${url}/v1/stream/${path}`
  const json = (token: string | undefined, method: string, body?: unknown): RequestInit => ({
    method,
    headers: { 'Content-Type': 'application/json', ...(token === undefined ? {} : { Authorization: `Bearer ${token}` }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const config = { type: 'pull-wake', pattern: 'jobs/*', wake_stream: 'wake/q' }
  expect((await fetch(at('wake/q'), json(WRITER, 'PUT', []))).status).toBe(201)
  expect((await fetch(at('__ds/subscriptions/team-a'), json(undefined, 'PUT', config))).status).toBe(401)
  expect((await fetch(at('__ds/subscriptions/other'), json(WRITER, 'PUT', config))).status).toBe(403)
  expect((await fetch(at('__ds/subscriptions/team-a'), json(READER, 'PUT', config))).status).toBe(403)
  expect((await fetch(at('__ds/subscriptions/team-a'), json(WRITER, 'PUT', config))).status).toBe(201)
  expect((await fetch(at('__ds/subscriptions/team-a'), json(READER, 'GET'))).status).toBe(200)
  expect((await fetch(at('__ds/jwks.json'))).status).toBe(200)
  expect((await fetch(at('jobs/1'), { method: 'PUT', headers: { 'Content-Type': 'text/plain', Authorization: `Bearer ${WRITER}` }, body: 'x' })).status).toBe(201)
  expect((await fetch(at('__ds/subscriptions/team-a/claim'), json(undefined, 'POST', { worker: 'w' }))).status).toBe(401)
  const claim = (await (await fetch(at('__ds/subscriptions/team-a/claim'), json(WRITER, 'POST', { worker: 'w' }))).json()) as Record<string, any>
  // The wake's own token authorizes the ack: no auth grant needed.
  const ack = await fetch(at('__ds/subscriptions/team-a/ack'), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${claim.token}` },
    body: JSON.stringify({ wake_id: claim.wake_id, generation: claim.generation, acks: [{ stream: 'jobs/1', offset: claim.streams[0].tail_offset }], done: true }),
  })
  expect(await ack.json()).toEqual({ ok: true, next_wake: false })
  rmSync(dir, { recursive: true, force: true })
})
