#!/usr/bin/env node
/**
 * bench/broadcast-server.mjs — the control of the fan-out scenario: an empty uWebSockets.js
 * SSE broadcaster that stores nothing. A PUT answers 201; a GET with live=sse answers with an
 * event stream and a first control event; each POST's body is framed once as a data event
 * followed by a control event, and on the next check phase (outside the writer's callback,
 * where uWS holds the writer's cork) the same bytes are written to every subscriber, one
 * corked write each. Its delivery latency is the floor of SSE fan-out on one core.
 *
 *   node bench/broadcast-server.mjs --port 18000
 *
 * Prints `broadcast-server listening on http://127.0.0.1:<port>/ (<uws module>)` once ready.
 */
import { serveBench } from './lib/uws.mjs'

const subscribers = new Set()
let position = 0
const offset = () => `0000000000000000_${String(position).padStart(16, '0')}`
const control = () => `event: control\ndata: {"streamNextOffset":"${offset()}","streamCursor":"1","upToDate":true}\n\n`
let pending = []

function broadcast() {
  const frame = Buffer.from(`${pending.join('')}${control()}`)
  pending = []
  for (const res of subscribers) res.cork(() => res.write(frame))
}

await serveBench('broadcast-server', (app) => {
  app.put('/*', (res) => {
    res.onAborted(() => {})
    res.onData((_chunk, isLast) => {
      if (isLast) res.cork(() => res.writeStatus('201 Created').writeHeader('Stream-Next-Offset', offset()).end())
    })
  })

  app.get('/*', (res) => {
    res.onAborted(() => subscribers.delete(res))
    res.cork(() => {
      res.writeStatus('200 OK').writeHeader('Content-Type', 'text/event-stream').writeHeader('Cache-Control', 'no-cache')
      res.write(control())
    })
    subscribers.add(res)
  })

  app.post('/*', (res) => {
    let aborted = false
    const chunks = []
    res.onAborted(() => {
      aborted = true
    })
    res.onData((chunk, isLast) => {
      chunks.push(Buffer.from(new Uint8Array(chunk)))
      if (!isLast || aborted) return
      const body = Buffer.concat(chunks).toString('utf8')
      position += Buffer.byteLength(body)
      if (pending.length === 0) setImmediate(broadcast)
      pending.push(`event: data\ndata: ${body}\n\n`)
      res.cork(() => res.writeStatus('204 No Content').writeHeader('Stream-Next-Offset', offset()).endWithoutBody())
    })
  })
})
