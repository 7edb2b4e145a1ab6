// Integration: HTTPS. A real server with --tls-cert/--tls-key (a self-signed certificate made
// with openssl for this test) and the official client over https:// in a child process that
// trusts it (NODE_EXTRA_CA_CERTS): create, append, catch-up and a live long-poll read. A
// plain-HTTP request to the TLS port gets no answer; a key that does not match is refused
// at startup with a message.

import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { output, ringstream, startup, useChildren } from '../process.js'

const spawnChild = useChildren()
/** The client package, imported by file from the script the child runs outside the project. */
const CLIENT = pathToFileURL(createRequire(import.meta.url).resolve('@durable-streams/client')).href
let work: string
let cert: string
let key: string

function selfSigned(dir: string, name: string): { cert: string; key: string } {
  const files = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) }
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', files.key, '-out', files.cert], { stdio: 'ignore' })
  return files
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'ringstream-tls-'))
  ;({ cert, key } = selfSigned(work, 'server'))
})

afterAll(() => rmSync(work, { recursive: true, force: true }))

test('the official client works over https://; plain HTTP to the TLS port gets nothing', async () => {
  const server = spawnChild(ringstream(['--port', '0', '--data-dir', join(work, 'data'), '--tls-cert', cert, '--tls-key', key]))
  const { url } = await startup(server)
  expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/)
  const script = join(work, 'client.mjs')
  writeFileSync(
    script,
    `
    import { DurableStream } from '${CLIENT}'
    const url = process.argv[2] + '/v1/stream/tls/one'
    const stream = await DurableStream.create({ url, contentType: 'application/json' })
    await stream.append(JSON.stringify({ n: 1 }))
    const created = await fetch(url.replace('/one', '/two'), { method: 'PUT', headers: { 'Content-Type': 'text/plain' } })
    const location = created.headers.get('location')
    const all = await (await stream.stream({ live: false })).json()
    // A long-poll read woken by an append made while it waits.
    const waiting = fetch(url + '?offset=' + (await fetch(url, { method: 'HEAD' })).headers.get('stream-next-offset') + '&live=long-poll')
    setTimeout(() => void stream.append(JSON.stringify({ n: 2 })), 200)
    const woken = await waiting
    console.log(JSON.stringify({ all, woken: woken.status, body: await woken.json(), location }))
    `,
  )
  const client = spawnChild([process.execPath, script, url], { NODE_EXTRA_CA_CERTS: cert })
  const { code, stdout, stderr } = await output(client)
  expect(stderr).toBe('')
  expect(code).toBe(0)
  // PROTOCOL §5.1: Location names the stream with the scheme it is served by.
  expect(JSON.parse(stdout)).toEqual({ all: [{ n: 1 }], woken: 200, body: [{ n: 2 }], location: `${url}/v1/stream/tls/two` })
  // Without trusting the certificate the client refuses it; plain HTTP gets no HTTP answer.
  await expect(fetch(`${url}/healthz`)).rejects.toThrow()
  await expect(fetch(`${url.replace('https:', 'http:')}/healthz`)).rejects.toThrow()
  server.kill('SIGTERM')
  await output(server)
})

test('a key that does not match the certificate is refused at startup, naming both files', async () => {
  const other = selfSigned(work, 'other')
  const { code, stderr } = await output(spawnChild(ringstream(['--port', '0', '--data-dir', join(work, 'data2'), '--tls-cert', cert, '--tls-key', other.key])))
  expect(code).toBe(1)
  expect(stderr).toContain(`TLS: cannot use --tls-cert ${cert} with --tls-key ${other.key}`)
  const half = await output(spawnChild(ringstream(['--port', '0', '--tls-cert', cert])))
  expect(half.code).toBe(1)
  expect(half.stderr).toContain('TLS needs both --tls-cert and --tls-key')
})
