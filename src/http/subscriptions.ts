// http/subscriptions.ts — the reserved control routes under /v1/stream/__ds/ (PROTOCOL
// §6, §7): the JWK Set, and subscriptions/:id with its streams, claim, ack, release and
// callback actions. Parses requests and writes responses only; subscriptions/manager.ts
// decides. With authentication on, managing and claiming need a grant covering
// `__ds/subscriptions/<id>` (GET: read; the rest: write); ack, release and callback are
// authorized by the wake's own bearer token instead, and the JWK Set is public.

import { accessFor } from '../auth/tokens.js'
import { StreamError, badRequest } from '../protocol/errors.js'
import { parseConfig, streamListOf, streamPathOf } from '../subscriptions/model.js'
import type { SubscriptionManager } from '../subscriptions/manager.js'
import type { MaybePromise } from '../util/maybe.js'
import type { HttpContext } from './context.js'
import type { Exchange } from './exchange.js'

export const CONTROL_PREFIX = '__ds/'
const SUBSCRIPTIONS = '__ds/subscriptions/'
/** Control request bodies are small JSON documents. */
const CONTROL_BODY_BYTES_MAX = 1024 * 1024
/** Explicit streams one request may list. */
const STREAMS_PER_REQUEST_MAX = 10_000
const JSON_HEADERS: Array<[string, string]> = [['Content-Type', 'application/json']]

/** `rest`: the raw (percent-encoded) URL after /v1/stream/, starting with __ds/. */
export function handleControl(x: Exchange, ctx: HttpContext, rest: string): void | Promise<void> {
  const manager = ctx.subscriptions
  if (manager === undefined) throw new StreamError('NOT_FOUND', 'subscriptions are not served here')
  if (rest === '__ds/jwks.json') {
    if (x.method !== 'GET') throw new StreamError('METHOD_NOT_ALLOWED', 'the JWK Set is read with GET')
    return x.send(200, [['Content-Type', 'application/jwk-set+json'], ['Cache-Control', 'public, max-age=300']], JSON.stringify(manager.jwks()))
  }
  if (rest === '__ds/watch' && ctx.watches !== undefined) {
    // Another node's subscriptions following this node's streams (cluster/stream-watch.ts).
    if (x.method !== 'POST') throw notAllowed('POST')
    const watches = ctx.watches
    const checked = ctx.auth?.check(x.header('authorization'), 'read', '__ds/watch')
    if (checked instanceof Promise) {
      x.readBody(CONTROL_BODY_BYTES_MAX).catch(() => {})
      return checked.then(() => watches.serve(x))
    }
    return watches.serve(x)
  }
  if (!rest.startsWith(SUBSCRIPTIONS)) throw new StreamError('SUBSCRIPTION_NOT_FOUND', 'no Durable Streams control route here')
  const tail = rest.slice(SUBSCRIPTIONS.length)
  const slash = tail.indexOf('/')
  const id = decode(slash < 0 ? tail : tail.slice(0, slash))
  const action = slash < 0 ? '' : tail.slice(slash + 1)
  if (action === 'ack' || action === 'release' || action === 'callback') return wakeAction(x, ctx, manager, id, action)
  const checked = ctx.auth?.check(x.header('authorization'), accessFor(x.method), `${SUBSCRIPTIONS}${id}`)
  if (checked instanceof Promise) {
    if (x.method === 'PUT' || x.method === 'POST') x.readBody(CONTROL_BODY_BYTES_MAX).catch(() => {})
    return checked.then(() => manage(x, ctx, manager, id, action))
  }
  return manage(x, ctx, manager, id, action)
}

function manage(x: Exchange, ctx: HttpContext, manager: SubscriptionManager, id: string, action: string): void | Promise<void> {
  const bytesMax = ctx.config.streamPathBytesMax
  if (action === '') {
    if (x.method === 'GET') return x.send(200, JSON_HEADERS, JSON.stringify(manager.serialize(manager.get(id))))
    if (x.method === 'DELETE') return reply(manager.delete(id), () => x.send(204, []))
    if (x.method !== 'PUT') throw notAllowed('PUT, GET or DELETE')
    return readJson(x).then((body) =>
      reply(manager.create(id, parseConfig(body, bytesMax, STREAMS_PER_REQUEST_MAX)), ([sub, created]) => x.send(created ? 201 : 200, JSON_HEADERS, JSON.stringify(manager.serialize(sub)))),
    )
  }
  if (action === 'streams') {
    if (x.method !== 'POST') throw notAllowed('POST')
    return readJson(x).then((body) => {
      const streams = streamListOf((body as { streams?: unknown } | null)?.streams, 'streams', bytesMax, STREAMS_PER_REQUEST_MAX)
      return reply(manager.addStreams(id, streams), () => x.send(204, []))
    })
  }
  if (action.startsWith('streams/')) {
    if (x.method !== 'DELETE') throw notAllowed('DELETE')
    const path = streamPathOf(decode(action.slice('streams/'.length)), 'stream path', bytesMax)
    return reply(manager.removeStream(id, path), () => x.send(204, []))
  }
  if (action === 'claim') {
    if (x.method !== 'POST') throw notAllowed('POST')
    return readJson(x).then((body) => {
      const worker = (body as { worker?: unknown } | null)?.worker
      if (typeof worker !== 'string' || worker.length === 0 || worker.length > 256) throw badRequest('claim needs "worker": a name of 1-256 characters')
      return reply(manager.claim(id, worker), (claimed) => x.send(200, JSON_HEADERS, JSON.stringify(claimed)))
    })
  }
  throw new StreamError('SUBSCRIPTION_NOT_FOUND', `no subscription action ${action}`)
}

function wakeAction(x: Exchange, _ctx: HttpContext, manager: SubscriptionManager, id: string, action: 'ack' | 'release' | 'callback'): Promise<void> {
  if (x.method !== 'POST') throw notAllowed('POST')
  const authorization = x.header('authorization')
  const token = /^Bearer\s+(\S+)$/i.exec(authorization)?.[1]
  return readJson(x).then((body) => {
    if (token === undefined) throw new StreamError('TOKEN_INVALID', `${action} needs the wake's token as Authorization: Bearer`)
    const input = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>
    const request = { wakeId: input.wake_id, generation: input.generation, acks: input.acks, done: input.done }
    if (action === 'release') return reply(manager.release(id, token, request), () => x.send(204, []))
    const type = action === 'ack' ? 'pull-wake' : 'webhook'
    return reply(manager.ack(id, token, request, type), (answer) => x.send(200, JSON_HEADERS, JSON.stringify(answer)))
  })
}

function readJson(x: Exchange): Promise<unknown> {
  return x.readBody(CONTROL_BODY_BYTES_MAX).then((bytes) => {
    try {
      return JSON.parse(bytes.toString('utf8')) as unknown
    } catch {
      throw badRequest('request body is not valid JSON')
    }
  })
}

function reply<T>(value: MaybePromise<T>, send: (ready: T) => void): void | Promise<void> {
  if (value instanceof Promise) return value.then(send)
  send(value)
}

function decode(raw: string): string {
  try {
    return decodeURIComponent(raw)
  } catch {
    throw badRequest('malformed percent-encoding in the control path')
  }
}

function notAllowed(allowed: string): StreamError {
  return new StreamError('METHOD_NOT_ALLOWED', `this control route takes ${allowed}`)
}
