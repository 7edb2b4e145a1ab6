// test/subscriptions/webhook-receiver.mjs — a real webhook receiver process for the
// subscription tests. It verifies every request's Webhook-Signature against the server's
// published JWK Set (fetched from --jwks, again when a kid is unknown) and prints one JSON
// line per request: { verified, kid, body }. --mode says how it answers:
//   done      200 { "done": true }
//   callback  200 {}, then POSTs the callback acking every listed stream's tail, done
//   hang      never answers (a slow receiver)
//   fail      500
// It prints { listening: port } first. Usage: node webhook-receiver.mjs --port P --jwks URL --mode M

import { createPublicKey, verify } from 'node:crypto'
import { createServer } from 'node:http'
import { parseArgs } from 'node:util'

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' }, jwks: { type: 'string' }, mode: { type: 'string', default: 'done' } } })
let keys = []

async function keyFor(kid) {
  let key = keys.find((each) => each.kid === kid)
  if (key === undefined) {
    keys = (await (await fetch(values.jwks)).json()).keys
    key = keys.find((each) => each.kid === kid)
  }
  return key
}

async function verified(raw, header) {
  const match = /^t=(\d+),kid=([^,]+),ed25519=([A-Za-z0-9_-]+)$/.exec(header ?? '')
  if (match === null) return { ok: false, kid: undefined }
  const [, t, kid, signature] = match
  if (Math.abs(Date.now() / 1000 - Number(t)) > 300) return { ok: false, kid }
  const jwk = await keyFor(kid)
  if (jwk === undefined) return { ok: false, kid }
  const ok = verify(null, Buffer.from(`${t}.${raw}`), createPublicKey({ key: jwk, format: 'jwk' }), Buffer.from(signature, 'base64url'))
  return { ok, kid }
}

const server = createServer((req, res) => {
  const chunks = []
  req.on('data', (chunk) => chunks.push(chunk))
  req.on('end', async () => {
    const raw = Buffer.concat(chunks).toString('utf8')
    const check = await verified(raw, req.headers['webhook-signature'])
    const body = JSON.parse(raw)
    console.log(JSON.stringify({ verified: check.ok, kid: check.kid, body }))
    if (values.mode === 'hang') return
    if (values.mode === 'fail') return res.writeHead(500).end()
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(values.mode === 'done' ? { done: true } : {}))
    if (values.mode !== 'callback') return
    const acks = body.streams.map((stream) => ({ stream: stream.path, offset: stream.tail_offset }))
    const answer = await fetch(body.callback_url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${body.callback_token}` },
      body: JSON.stringify({ wake_id: body.wake_id, generation: body.generation, acks, done: true }),
    })
    console.log(JSON.stringify({ callback: answer.status, answer: await answer.json(), generation: body.generation }))
  })
})
server.listen(Number(values.port), '127.0.0.1', () => console.log(JSON.stringify({ listening: server.address().port })))
