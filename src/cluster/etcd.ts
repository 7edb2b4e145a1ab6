// cluster/etcd.ts — an etcd v3 client: leases, single-key reads and writes, prefix reads,
// transactions and waiting for one key to change, and which endpoint to ask. It speaks
// etcd's v3 JSON gateway (POST /v3/...) with plain `fetch` rather than the npm `etcd3` gRPC
// client: no gRPC/protobuf stack to install, every call has exactly the timeout we choose
// (AbortSignal.timeout), and a lost lease is known at the first keep-alive that says so,
// where etcd3 reports it only after about two TTLs.
//
// Keys and values are UTF-8 strings (base64 on the wire); lease ids stay the decimal strings
// etcd sends (they are 64-bit); revisions are parsed to numbers. A call tries the endpoints
// in order from the last one that answered. A failure that says nothing about what etcd did
// (no connection, a timeout, an answer that is not etcd's, gRPC UNAVAILABLE such as "no
// leader") moves on to the next endpoint; when all fail, EtcdUnavailableError. Such a retry
// may repeat a write the first endpoint applied: callers write idempotently or check by
// transaction. Any other etcd error answer is EtcdError with its gRPC code.

/** How long one request to one endpoint may take, unless the caller sets it. */
const REQUEST_TIMEOUT_MS_DEFAULT = 1000
/** A watch message longer than this is not etcd's (its own request limit is 1.5 MiB). */
const WATCH_MESSAGE_CHARS_MAX = 4 * 1024 * 1024

/** gRPC status codes the client acts on. */
const GRPC_UNKNOWN = 2
const GRPC_NOT_FOUND = 5
const GRPC_UNAVAILABLE = 14

export interface EtcdKv {
  readonly key: string
  readonly value: string
  readonly createRevision: number
  readonly modRevision: number
  /** The lease the key is attached to, if any. */
  readonly lease: string | undefined
}

export type EtcdCompare = {
  key: string
  target: 'CREATE' | 'MOD' | 'VALUE'
  /** Default EQUAL. */
  result?: 'EQUAL' | 'GREATER' | 'LESS' | 'NOT_EQUAL'
  /** For target CREATE (0: the key does not exist). */
  createRevision?: number
  /** For target MOD. */
  modRevision?: number
  /** For target VALUE. */
  value?: string
}

export type EtcdOp = { put: { key: string; value: string; lease?: string } } | { delete: { key: string } } | { get: { key: string; prefix?: boolean } }

export interface EtcdTxnResult {
  readonly succeeded: boolean
  readonly revision: number
  /** kvs of the get ops of the branch that ran, in order */
  readonly gets: ReadonlyArray<readonly EtcdKv[]>
}

/** An error answer from etcd; `code` is the gRPC status code (5: not found, 9: failed precondition...). */
export class EtcdError extends Error {
  override readonly name = 'EtcdError'
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message)
  }
}

/** No endpoint answered: each failed to connect, timed out, or was not a working etcd. */
export class EtcdUnavailableError extends Error {
  override readonly name = 'EtcdUnavailableError'
  constructor(endpoints: readonly string[], cause: unknown) {
    super(`no etcd endpoint answered (${endpoints.join(', ')}); last: ${causeText(cause)}`, { cause })
  }
}

type Json = Record<string, unknown>

export class Etcd {
  readonly endpoints: readonly string[]
  private readonly requestTimeoutMs: number
  /** Index of the endpoint that answered last: calls start there. */
  private preferred = 0

  constructor(endpoints: readonly string[], options: { requestTimeoutMs?: number } = {}) {
    if (endpoints.length === 0) throw new RangeError('etcd: no endpoints')
    for (const endpoint of endpoints) if (!/^https?:\/\/[^/]+\/?$/.test(endpoint)) throw new RangeError(`etcd endpoint ${endpoint}: expected http(s)://host:port`)
    this.endpoints = endpoints.map((endpoint) => endpoint.replace(/\/$/, ''))
    this.requestTimeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS_DEFAULT
    if (!(this.requestTimeoutMs > 0)) throw new RangeError(`etcd requestTimeoutMs ${this.requestTimeoutMs}: must be positive`)
  }

  /** etcd may grant more than asked: its minimum TTL is 2 s with default timing. */
  async grant(ttlSeconds: number): Promise<{ id: string; ttlSeconds: number }> {
    if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds <= 0) throw new RangeError(`lease TTL ${ttlSeconds}: must be a positive integer`)
    const answer = await this.call('/v3/lease/grant', { TTL: String(ttlSeconds) })
    if (typeof answer.error === 'string' && answer.error !== '') throw new EtcdError(GRPC_UNKNOWN, answer.error)
    return { id: leaseId(answer.ID), ttlSeconds: int(answer.TTL, 'TTL') }
  }

  /** One keep-alive; resolves with the TTL etcd reports (0: the lease is gone). */
  async keepAlive(id: string): Promise<number> {
    const answer = await this.call('/v3/lease/keepalive', { ID: id })
    return int(object(answer.result, 'result').TTL, 'TTL')
  }

  /** A lease already gone is not an error. */
  async revoke(id: string): Promise<void> {
    try {
      await this.call('/v3/lease/revoke', { ID: id })
    } catch (error) {
      if (!(error instanceof EtcdError && error.code === GRPC_NOT_FOUND)) throw error
    }
  }

  async get(key: string): Promise<{ kv: EtcdKv | undefined; revision: number }> {
    const answer = await this.call('/v3/kv/range', range(key, false))
    return { kv: kvs(answer.kvs)[0], revision: revision(answer) }
  }

  async getPrefix(prefix: string): Promise<{ kvs: EtcdKv[]; revision: number }> {
    const answer = await this.call('/v3/kv/range', range(prefix, true))
    return { kvs: kvs(answer.kvs), revision: revision(answer) }
  }

  /** Resolves with the revision of the put. */
  async put(key: string, value: string, lease?: string): Promise<number> {
    return revision(await this.call('/v3/kv/put', putRequest({ key, value, lease })))
  }

  /** Resolves with the store's revision after the delete (unchanged when the key was absent). */
  async delete(key: string): Promise<number> {
    return revision(await this.call('/v3/kv/deleterange', { key: base64(key) }))
  }

  async txn(compare: EtcdCompare[], success: EtcdOp[], failure: EtcdOp[] = []): Promise<EtcdTxnResult> {
    const answer = await this.call('/v3/kv/txn', { compare: compare.map(compareRequest), success: success.map(opRequest), failure: failure.map(opRequest) })
    const gets: EtcdKv[][] = []
    for (const response of array(answer.responses, 'responses')) {
      const read = object(response, 'response').response_range
      if (read !== undefined) gets.push(kvs(object(read, 'response_range').kvs))
    }
    return { succeeded: answer.succeeded === true, revision: revision(answer), gets }
  }

  /** Resolves when `key` changes after `afterRevision` (put or delete), or after `timeoutMs`
   * (false). A watch stream that breaks is opened again on the next endpoint from the same
   * revision; when every endpoint in a row fails to open one, EtcdUnavailableError. */
  async waitForChange(key: string, afterRevision: number, timeoutMs: number): Promise<boolean> {
    if (!Number.isSafeInteger(afterRevision) || afterRevision < 0) throw new RangeError(`revision ${afterRevision}: must be a non-negative integer`)
    const deadline = Date.now() + timeoutMs
    const payload = JSON.stringify({ create_request: { key: base64(key), start_revision: String(afterRevision + 1) } })
    let index = this.preferred
    let failures = 0
    let lastCause: unknown
    while (failures < this.endpoints.length) {
      const remainingMs = deadline - Date.now()
      if (remainingMs <= 0) return false
      try {
        return await this.watchOnce(index, payload, remainingMs, () => (failures = 0))
      } catch (error) {
        if (error instanceof EtcdError && error.code !== GRPC_UNAVAILABLE) throw error
        lastCause = error
        failures++
        index = (index + 1) % this.endpoints.length
      }
    }
    throw new EtcdUnavailableError(this.endpoints, lastCause)
  }

  /** One watch on one endpoint: true on a change, false at the deadline; throws when the
   * stream cannot be opened within the request timeout or breaks. */
  private async watchOnce(index: number, payload: string, remainingMs: number, onCreated: () => void): Promise<boolean> {
    const endpoint = this.endpoints[index]!
    const controller = new AbortController()
    let deadlinePassed = false
    const deadline = setTimeout(() => {
      deadlinePassed = true
      controller.abort()
    }, remainingMs)
    const opening = setTimeout(() => controller.abort(new Error(`${endpoint}: no watch within ${this.requestTimeoutMs} ms`)), this.requestTimeoutMs)
    try {
      const response = await fetch(`${endpoint}/v3/watch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: payload, signal: controller.signal })
      if (response.body === null) throw new Error(`${endpoint}: HTTP ${response.status} without a body`)
      for await (const line of lines(response.body)) {
        const result = object(answerOf(endpoint, response.status, line).result, 'result')
        if (result.created === true) {
          clearTimeout(opening)
          this.preferred = index
          onCreated()
        }
        // Compacted past afterRevision: whether the key changed cannot be known, so say it did.
        if (result.compact_revision !== undefined && int(result.compact_revision, 'compact_revision') > 0) return true
        if (result.canceled === true) throw new Error(`${endpoint}: watch canceled (${String(result.cancel_reason ?? 'no reason')})`)
        if (Array.isArray(result.events) && result.events.length > 0) return true
      }
      throw new Error(`${endpoint}: the watch stream ended`)
    } catch (error) {
      if (deadlinePassed) return false
      throw error
    } finally {
      clearTimeout(deadline)
      clearTimeout(opening)
      controller.abort()
    }
  }

  private async call(path: string, body: Json): Promise<Json> {
    const payload = JSON.stringify(body)
    let lastCause: unknown
    for (let tried = 0; tried < this.endpoints.length; tried++) {
      const index = (this.preferred + tried) % this.endpoints.length
      const endpoint = this.endpoints[index]!
      try {
        const response = await fetch(`${endpoint}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: payload,
          signal: AbortSignal.timeout(this.requestTimeoutMs),
        })
        // Streaming calls (keep-alive) answer one message per line; we send one request.
        const answer = answerOf(endpoint, response.status, (await response.text()).split('\n', 1)[0]!)
        this.preferred = index
        return answer
      } catch (error) {
        if (error instanceof EtcdError && error.code !== GRPC_UNAVAILABLE) {
          this.preferred = index
          throw error
        }
        lastCause = error
      }
    }
    throw new EtcdUnavailableError(this.endpoints, lastCause)
  }
}

/** The JSON of one answer; throws EtcdError for etcd's error answers (unary: {"error":
 * "…","code":N}; a stream's: {"error":{"grpc_code":N,"message":"…"}}) and a plain Error
 * for an answer that is not etcd's. */
function answerOf(endpoint: string, status: number, text: string): Json {
  let answer: unknown
  try {
    answer = JSON.parse(text)
  } catch {
    throw new Error(`${endpoint} answered HTTP ${status} that is not etcd's JSON: ${text.slice(0, 200)}`)
  }
  if (typeof answer !== 'object' || answer === null || Array.isArray(answer)) throw new Error(`${endpoint} answered HTTP ${status} with ${text.slice(0, 200)}`)
  const { error, code } = answer as Json
  if (typeof code === 'number') throw new EtcdError(code, typeof error === 'string' ? error : text)
  if (typeof error === 'object' && error !== null) {
    const { grpc_code: grpcCode, message } = error as Json
    throw new EtcdError(typeof grpcCode === 'number' ? grpcCode : GRPC_UNKNOWN, typeof message === 'string' ? message : text)
  }
  return answer as Json
}

/** The newline-delimited messages of a streaming answer. */
async function* lines(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder()
  let pending = ''
  for await (const chunk of body) {
    pending += decoder.decode(chunk, { stream: true })
    let end: number
    while ((end = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, end).trim()
      pending = pending.slice(end + 1)
      if (line !== '') yield line
    }
    if (pending.length > WATCH_MESSAGE_CHARS_MAX) throw new Error(`a watch message over ${WATCH_MESSAGE_CHARS_MAX} characters`)
  }
  pending += decoder.decode()
  if (pending.trim() !== '') yield pending.trim()
}

function base64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64')
}

function fromBase64(value: unknown, what: string): string {
  if (value === undefined) return '' // proto3 JSON leaves out empty bytes
  if (typeof value !== 'string') throw malformed(what, value)
  return Buffer.from(value, 'base64').toString('utf8')
}

/** A key, or every key starting with it: range_end is the prefix with its last byte raised
 * by one (UTF-8 has no 0xff byte, so no carry); for "" every key, from "\0" to no bound ("\0"). */
function range(key: string, prefix: boolean): Json {
  if (!prefix) return { key: base64(key) }
  if (key === '') return { key: 'AA==', range_end: 'AA==' }
  const end = Buffer.from(key, 'utf8')
  end[end.length - 1] = end[end.length - 1]! + 1
  return { key: base64(key), range_end: end.toString('base64') }
}

function putRequest(put: { key: string; value: string; lease?: string | undefined }): Json {
  return { key: base64(put.key), value: base64(put.value), ...(put.lease === undefined ? {} : { lease: put.lease }) }
}

function opRequest(op: EtcdOp): Json {
  if ('put' in op) return { request_put: putRequest(op.put) }
  if ('delete' in op) return { request_delete_range: { key: base64(op.delete.key) } }
  return { request_range: range(op.get.key, op.get.prefix === true) }
}

function compareRequest(compare: EtcdCompare): Json {
  const common = { key: base64(compare.key), target: compare.target, result: compare.result ?? 'EQUAL' }
  const operand = compare.target === 'CREATE' ? compare.createRevision : compare.target === 'MOD' ? compare.modRevision : compare.value
  if (operand === undefined) throw new RangeError(`etcd compare on ${compare.target} of ${compare.key}: no ${compare.target.toLowerCase()} operand`)
  if (compare.target === 'CREATE') return { ...common, create_revision: String(operand) }
  if (compare.target === 'MOD') return { ...common, mod_revision: String(operand) }
  return { ...common, value: base64(String(operand)) }
}

function kvs(raw: unknown): EtcdKv[] {
  if (raw === undefined) return [] // proto3 JSON leaves out an empty list
  return array(raw, 'kvs').map((entry) => {
    const kv = object(entry, 'kv')
    const lease = kv.lease === undefined || kv.lease === '0' ? undefined : leaseId(kv.lease)
    return { key: fromBase64(kv.key, 'key'), value: fromBase64(kv.value, 'value'), createRevision: int(kv.create_revision, 'create_revision'), modRevision: int(kv.mod_revision, 'mod_revision'), lease }
  })
}

function revision(answer: Json): number {
  return int(object(answer.header, 'header').revision, 'revision')
}

/** An int64 field: a decimal string, or absent for 0 (proto3 JSON). */
function int(value: unknown, what: string): number {
  if (value === undefined) return 0
  const parsed = typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : typeof value === 'number' ? value : Number.NaN
  if (!Number.isSafeInteger(parsed)) throw malformed(what, value)
  return parsed
}

function leaseId(value: unknown): string {
  if (typeof value !== 'string' || !/^\d+$/.test(value)) throw malformed('lease ID', value)
  return value
}

function object(value: unknown, what: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed(what, value)
  return value as Json
}

function array(value: unknown, what: string): unknown[] {
  if (value === undefined) return []
  if (!Array.isArray(value)) throw malformed(what, value)
  return value
}

function malformed(what: string, value: unknown): EtcdError {
  return new EtcdError(GRPC_UNKNOWN, `etcd answered a malformed ${what}: ${JSON.stringify(value)?.slice(0, 200)}`)
}

function causeText(cause: unknown): string {
  if (!(cause instanceof Error)) return String(cause)
  const inner = cause.cause instanceof Error ? ` (${cause.cause.message})` : ''
  return `${cause.message}${inner}`
}
