// Reads of closed streams where PROTOCOL.md asks for more than the official suite checks
// (rows 5.6-7, 5.8-15, 5.8-16 and 8-24 of docs/protocol-coverage.md), in every class, with
// catch-up responses limited to 1 KiB so a read can end before the final offset.

import { expect, test } from 'vitest'
import { uniqueName } from '../helpers.js'
import { inEveryClass } from './servers.js'

const offsetOf = (position: number): string => `0000000000000000_${String(position).padStart(16, '0')}`

inEveryClass(
  'reads of a closed stream',
  (server) => {
    async function closedStream(bytes: number): Promise<string> {
      const url = server.stream(uniqueName('closed-read'))
      const body = 'x'.repeat(bytes)
      const res = await fetch(url, { method: 'PUT', headers: { 'Content-Type': 'text/plain', 'Stream-Closed': 'true' }, body })
      expect(res.status).toBe(201)
      return url
    }

    // §5.8: "Servers MUST immediately emit a control event with streamClosed: true and
    // upToDate: true" and close the connection, for a client at the tail of a closed stream.
    test('SSE at the final offset of a closed stream: one control event with streamClosed and upToDate, then the connection ends', async () => {
      const url = await closedStream(5)
      const res = await fetch(`${url}?offset=${offsetOf(5)}&live=sse`)
      expect(res.status).toBe(200)
      const text = await res.text() // resolves only once the server ends the response
      const events = text.split('\n\n').filter((event) => event.trim() !== '')
      expect(events.length).toBe(1)
      expect(events[0]).toMatch(/^event: control\ndata:/)
      const control = JSON.parse(events[0]!.slice(events[0]!.indexOf('data:') + 5)) as Record<string, unknown>
      expect(control).toMatchObject({ streamNextOffset: offsetOf(5), streamClosed: true, upToDate: true })
      expect(control.streamCursor).toBeUndefined()
    })

    // §8: offset=now on a closed stream names the final offset and says closed.
    test('offset=now on a closed stream: the final offset, Stream-Closed and Stream-Up-To-Date, an empty body', async () => {
      const url = await closedStream(7)
      const res = await fetch(`${url}?offset=now`)
      expect(res.status).toBe(200)
      expect(res.headers.get('stream-next-offset')).toBe(offsetOf(7))
      expect(res.headers.get('stream-closed')).toBe('true')
      expect(res.headers.get('stream-up-to-date')).toBe('true')
      expect(await res.text()).toBe('')
    })

    // §8: offset=now on a closed stream returns at once with the closure signal, whatever live is.
    test('offset=now&live=long-poll on a closed stream answers at once: 204 with the final offset, Stream-Closed and Stream-Up-To-Date', async () => {
      const url = await closedStream(4)
      const started = Date.now()
      const res = await fetch(`${url}?offset=now&live=long-poll`)
      // At once, not after the long-poll timeout (10 s for this file's servers).
      expect(Date.now() - started).toBeLessThan(5000)
      expect(res.status).toBe(204)
      expect(res.headers.get('stream-next-offset')).toBe(offsetOf(4))
      expect(res.headers.get('stream-closed')).toBe('true')
      expect(res.headers.get('stream-up-to-date')).toBe('true')
    })

    test('offset=now&live=sse on a closed stream: one control event with the final offset, streamClosed and upToDate, then the end', async () => {
      const url = await closedStream(6)
      const text = await (await fetch(`${url}?offset=now&live=sse`)).text()
      const events = text.split('\n\n').filter((event) => event.trim() !== '')
      expect(events.length).toBe(1)
      const control = JSON.parse(events[0]!.slice(events[0]!.indexOf('data:') + 5)) as Record<string, unknown>
      expect(control).toMatchObject({ streamNextOffset: offsetOf(6), streamClosed: true, upToDate: true })
    })

    // §5.6: Stream-Closed only when the response reaches the final offset.
    test('a catch-up read that ends before the final offset of a closed stream carries no Stream-Closed; the last one does', async () => {
      const url = await closedStream(3000)
      const first = await fetch(`${url}?offset=-1`)
      expect(first.status).toBe(200)
      expect((await first.text()).length).toBe(1024)
      expect(first.headers.get('stream-closed')).toBeNull()
      expect(first.headers.get('stream-up-to-date')).toBeNull()
      const last = await fetch(`${url}?offset=${offsetOf(2048)}`)
      expect((await last.text()).length).toBe(3000 - 2048)
      expect(last.headers.get('stream-closed')).toBe('true')
      expect(last.headers.get('stream-up-to-date')).toBe('true')
    })
  },
  { readBytesMax: 1024, longPollTimeoutMs: 10_000 },
)
