// test/browser/page/main.ts — the browser test's page (bundled with the official client by
// esbuild, served from another origin than the server): 20 live readers at once, SSE and
// long-poll, JSON and text, each saving its offset in localStorage and resuming from it on a
// reload; a reader with a wrong bearer token; a writer (an idempotent producer); and a StreamDB (@durable-streams/state)
// materializing a State Protocol stream live. The query string says what to run:
//   ?server=<stream base URL>&run=<stream name prefix>&token=<bearer token>[&only=readers]
//   [&token-in=query]: the readers send the token as ?access_token= (--auth-query-token on)
// It shows each reader's state in a table and keeps it in window.ringstreamPage for the test.

import './process-shim.js'
import { DurableStream, IdempotentProducer, type JsonBatch, type TextChunk, stream } from '@durable-streams/client'
import { createStateSchema } from '@durable-streams/state'
import { createStreamDB } from '@durable-streams/state/db'
import { type PageState, READERS, type ReaderState, kindOf, modeOf } from '../layout.js'

const query = new URLSearchParams(location.search)
const server = query.get('server') ?? ''
const run = query.get('run') ?? 'run'
const token = query.get('token') ?? ''
const headers = { Authorization: `Bearer ${token}` }
/** How the readers send their token: a header (a CORS preflight per new URL) or a query parameter. */
const credentials = query.get('token-in') === 'query' ? { params: { access_token: token } } : { headers }

const page: PageState = { readers: [], wrongToken: undefined, written: undefined, stateRows: {} }
;(window as unknown as { ringstreamPage: PageState }).ringstreamPage = page

const saved = (path: string): string => localStorage.getItem(`offset:${path}`) ?? '-1'

function startReader(index: number): void {
  const path = `${run}-${index}`
  const mode = modeOf(index)
  const kind = kindOf(index)
  const from = saved(path)
  const reader: ReaderState = { index, path, mode, kind, resumedFrom: from, offset: from, received: [], status: 'opening' }
  page.readers.push(reader)
  const keep = (messages: readonly string[], offset: string): void => {
    const at = Date.now()
    for (const message of messages) reader.received.push({ message, at })
    reader.offset = offset
    reader.status = 'live'
    localStorage.setItem(`offset:${path}`, offset)
    render()
  }
  stream({ url: `${server}/${path}`, offset: from, live: mode, ...credentials, warnOnHttp: false })
    .then((response) => {
      reader.status = 'live'
      render()
      if (kind === 'json') {
        response.subscribeJson((batch: JsonBatch<unknown>) => keep(batch.items.map((item) => JSON.stringify(item)), batch.offset))
      } else {
        // A text chunk may hold several appends, each a line.
        response.subscribeText((chunk: TextChunk) => keep(chunk.text.split('\n').filter((line) => line !== ''), chunk.offset))
      }
    })
    .catch((error: Error) => {
      reader.status = `failed: ${error.name} ${error.message}`
      render()
    })
}

/** A catch-up read with a wrong token: the client must surface the server's 401. */
function tryWrongToken(): void {
  stream({ url: `${server}/${run}-0`, live: false, headers: { Authorization: 'Bearer not-a-token-of-this-server' }, warnOnHttp: false })
    .then(() => (page.wrongToken = 'no error'))
    .catch((error: Error & { status?: number }) => (page.wrongToken = `${error.name} ${error.status ?? ''}`.trim()))
    .finally(render)
}

/** Creates a JSON stream and appends 3 messages with an idempotent producer, from the page. */
async function write(): Promise<void> {
  try {
    const target = await DurableStream.create({ url: `${server}/${run}-from-page`, contentType: 'application/json', headers, warnOnHttp: false })
    const producer = new IdempotentProducer(target, 'page-writer', { lingerMs: 0 })
    for (let n = 1; n <= 3; n++) producer.append(JSON.stringify({ from: 'page', n }))
    await producer.flush()
    const head = await target.head()
    page.written = head.exists ? `3 appended, next offset ${head.offset}` : 'failed: gone after writing'
  } catch (error) {
    page.written = `failed: ${(error as Error).name} ${(error as Error).message}`
  }
  render()
}

interface Item {
  readonly id: string
  readonly title: string
}

/** A Standard Schema validator for an item (no schema library needed in the page). */
const itemSchema = {
  '~standard': {
    version: 1 as const,
    vendor: 'ringstream-browser-test',
    validate: (value: unknown) => (typeof (value as Item)?.id === 'string' ? { value: value as Item } : { issues: [{ message: 'not an item' }] }),
  },
}

function startStateDb(): void {
  const schema = createStateSchema({ items: { schema: itemSchema, type: 'item', primaryKey: 'id' } })
  const db = createStreamDB({ streamOptions: { url: `${server}/${run}-state`, contentType: 'application/json', headers, warnOnHttp: false }, live: 'sse', state: schema })
  const items = db.collections.items
  const copy = (): void => {
    page.stateRows = Object.fromEntries([...items.values()].map((item) => [item.id, JSON.stringify({ id: item.id, title: item.title })]))
    render()
  }
  items.subscribeChanges(copy)
  db.preload().then(copy, (error: Error) => (page.stateRows = { error: error.message }))
}

let rendering = false
function render(): void {
  if (rendering) return
  rendering = true
  requestAnimationFrame(() => {
    rendering = false
    // Every stream gets the same appends: a reader holding fewer than another is stalled.
    const most = Math.max(...page.readers.map((reader) => reader.received.length))
    const shown = page.readers.map((reader) => {
      const behind = most - reader.received.length
      return reader.status !== 'live' ? reader.status : behind > 0 ? `stalled (${behind} behind)` : 'live'
    })
    const rows = page.readers.map((reader, i) => {
      const state = shown[i]!
      return `<tr class="${state.startsWith('failed') ? 'failed' : state === 'live' ? '' : 'stalled'}"><td>${reader.index}</td><td>${reader.path}</td><td>${reader.mode}</td>` +
        `<td>${reader.kind}</td><td>${reader.resumedFrom}</td><td>${reader.offset}</td><td>${reader.received.length}</td><td>${escape(reader.received.at(-1)?.message ?? '')}</td><td>${escape(state)}</td></tr>`
    })
    document.querySelector('#readers tbody')!.innerHTML = rows.join('')
    const others = query.get('only') === 'readers' ? '' : ` · wrong token: ${page.wrongToken ?? 'waiting'} · writer: ${page.written ?? 'waiting'} · StreamDB rows: ${Object.keys(page.stateRows).length}`
    document.querySelector('#summary')!.textContent = `server ${server} · live ${shown.filter((state) => state === 'live').length} of ${page.readers.length}${others}`
  })
}

const escape = (text: string): string => text.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`)

for (let i = 0; i < READERS; i++) startReader(i)
if (query.get('only') !== 'readers') {
  tryWrongToken()
  void write()
  startStateDb()
}
render()
