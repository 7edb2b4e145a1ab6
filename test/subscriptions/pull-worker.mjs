// test/subscriptions/pull-worker.mjs — a real pull-wake worker process. It follows the wake
// stream with the official client (long-poll) until a wake of --sub appears, claims the
// subscription as --worker, and prints the claim as one JSON line { claimed }. Then, with
// --hold, it keeps the lease and never acks (the test SIGKILLs it); otherwise it acks every
// claimed stream's tail with done: true and prints { acked } and exits.
// Usage: node pull-worker.mjs --base URL --sub ID --worker NAME --wake-stream PATH [--hold]

import { DurableStream } from '@durable-streams/client'
import { parseArgs } from 'node:util'

const { values } = parseArgs({ options: { base: { type: 'string' }, sub: { type: 'string' }, worker: { type: 'string' }, 'wake-stream': { type: 'string' }, hold: { type: 'boolean' } } })
const root = `${values.base}/v1/stream`
const subUrl = `${root}/__ds/subscriptions/${values.sub}`

const wakes = await new DurableStream({ url: `${root}/${values['wake-stream']}` }).stream({ live: 'long-poll', offset: '-1' })
await new Promise((resolve) => {
  const stop = wakes.subscribeJson((batch) => {
    if (batch.items.some((event) => event.type === 'wake' && event.subscription_id === values.sub)) {
      stop()
      resolve()
    }
  })
})
wakes.cancel()

let claim
for (;;) {
  const res = await fetch(`${subUrl}/claim`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ worker: values.worker }) })
  claim = await res.json()
  if (res.status === 200) break
  // Another worker holds the lease (it may have died holding it): wait for the lease to end.
  if (claim.error?.code !== 'ALREADY_CLAIMED') throw new Error(`claim: ${res.status} ${JSON.stringify(claim)}`)
  await new Promise((resolve) => setTimeout(resolve, 100))
}
console.log(JSON.stringify({ claimed: claim }))
if (values.hold) await new Promise(() => {})

const acks = claim.streams.map((stream) => ({ stream: stream.path, offset: stream.tail_offset }))
const ack = await fetch(`${subUrl}/ack`, {
  method: 'POST',
  headers: { 'content-type': 'application/json', authorization: `Bearer ${claim.token}` },
  body: JSON.stringify({ wake_id: claim.wake_id, generation: claim.generation, acks, done: true }),
})
console.log(JSON.stringify({ acked: { status: ack.status, body: await ack.json() } }))
