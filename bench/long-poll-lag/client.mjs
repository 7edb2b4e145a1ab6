// bench/long-poll-lag/client.mjs — one producer and one live reader of the same JSON stream,
// both with @durable-streams/client as its README shows (IdempotentProducer; stream() with
// live: 'long-poll' or 'sse'), in one process on the client core. The producer appends
// `rate` messages a second for `seconds`; the reader records when each message arrives.
// Prints one JSON line: per-message lag (arrival − append call) p50/p99/max, how long after
// the producer's last acknowledged append the reader had the last message, and the reader's
// requests and the bytes of its largest response.
//
//   node bench/long-poll-lag/client.mjs URL LIVE RATE SECONDS

import { DurableStream, IdempotentProducer, stream } from '@durable-streams/client'
import { countingFetch } from '../lib/client-bench.mjs'

const [url, live, rateArg, secondsArg] = process.argv.slice(2)
const rate = Number(rateArg)
const total = Math.round(rate * Number(secondsArg))
const pad = 'x'.repeat(150)

const { counts, fetch: counting } = countingFetch()

const handle = await DurableStream.create({ url, contentType: 'application/json' })
const lags = []
let lastArrival = 0
let received = 0
const allReceived = new Promise((resolve) => {
  void stream({ url, offset: '-1', live, json: true, fetch: counting }).then((res) =>
    res.subscribeJson(async (batch) => {
      const now = performance.now()
      for (const item of batch.items) {
        lags.push(now - item.t)
        received++
      }
      lastArrival = now
      if (received >= total) resolve()
    }),
  )
})

const producer = new IdempotentProducer(handle, 'lag-bench', { autoClaim: true, onError: (error) => console.error(error) })
const started = performance.now()
for (let i = 0; i < total; i++) {
  const due = started + (i * 1000) / rate
  const wait = due - performance.now()
  if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait))
  producer.append(JSON.stringify({ i, t: performance.now(), pad }))
}
await producer.flush()
const lastAck = performance.now()
const timeout = new Promise((resolve) => setTimeout(() => resolve('timeout'), 30_000))
const outcome = await Promise.race([allReceived.then(() => 'ok'), timeout])
await producer.close()
lags.sort((a, b) => a - b)
const at = (q) => Math.round(lags[Math.min(lags.length - 1, Math.floor(q * lags.length))] * 10) / 10
console.log(JSON.stringify({ live, rate, messages: total, received, outcome, lagP50: at(0.5), lagP99: at(0.99), lagMax: at(1), afterLastAckMs: Math.round((lastArrival - lastAck) * 10) / 10, requests: counts.requests, largestResponse: counts.largestResponse }))
process.exit(0)
