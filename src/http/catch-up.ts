// http/catch-up.ts — a catch-up or long-poll response of more than one piece (the official
// clients with live: false read a stream with one request, so the whole stream goes in one
// response, up to readBytesMax). The bytes go out a piece (readChunkBytes) at a time: a
// piece is read from the stream's files and written, and the next is read only once the
// socket has taken it (uWS backpressure), so a response of hundreds of MiB holds about one
// piece in memory. JSON streams are framed on the fly: '[', the stored bytes less their last
// ',', ']'. Gzip, when asked for, goes through a zlib stream. The body is chunked (its
// length is not sent). If a read fails or the stream goes away mid-response, the
// connection is closed without ending the body, so the client sees a truncated response,
// never a complete-looking short one.

import { type Gzip, createGzip } from 'node:zlib'
import { CLOSE, OPEN } from '../protocol/json.js'
import type { ReadExtent } from '../streams/engine.js'
import type { Stream } from '../streams/stream.js'
import { log } from '../util/log.js'
import type { HttpContext } from './context.js'
import type { Exchange } from './exchange.js'

export async function sendPieces(x: Exchange, ctx: HttpContext, stream: Stream, extent: ReadExtent, headers: Array<[string, string]>, gzip: boolean): Promise<void> {
  if (x.done) return
  if (gzip) headers.push(['Content-Encoding', 'gzip'], ['Vary', 'Accept-Encoding'])
  const sender = new PieceSender(x, gzip ? createGzip() : undefined)
  // Pinned while sending: the stream object must stay the one the registry serves.
  stream.pins++
  x.startStream(200, headers)
  try {
    const json = stream.config.json
    // The stored bytes of a JSON stream end with ',', which the array's ']' replaces.
    const bodyEnd = json ? extent.end - 1 : extent.end
    if (json) await sender.send([OPEN])
    for (let at = extent.start; at < bodyEnd && !x.done; ) {
      const gone = ctx.engine.registry.goneReason(stream)
      if (gone !== undefined) throw gone
      const to = Math.min(at + ctx.pieceBytes, bodyEnd)
      await sender.send(await stream.read(at, to))
      at = to
    }
    if (json) await sender.send([CLOSE])
    await sender.finish()
  } catch (error) {
    log.warn({ err: error }, `ringstream: a streamed read of ${stream.path} stopped: ${(error as Error).message}`)
    x.closeStream()
  } finally {
    stream.pins--
    sender.release()
  }
}

/** Writes pieces to the response, through gzip or not, waiting whenever the socket is full. */
class PieceSender {
  /** The socket took less than it was given: wait for onWritable before more. */
  private full = false
  private waiting: (() => void) | undefined
  private zipFailure: Error | undefined

  constructor(
    private readonly x: Exchange,
    private readonly zip: Gzip | undefined,
  ) {
    x.onWritable(() => {
      this.full = false
      this.wakeUp()
    })
    x.onAbort(() => this.wakeUp())
    zip?.on('data', (out: Buffer) => this.write([out]))
    zip?.on('error', (error: Error) => {
      this.zipFailure = error
      this.wakeUp()
    })
  }

  /** Sends `parts` (valid only during this turn: written or copied now); resolves once the
   * socket may take more. */
  async send(parts: readonly Uint8Array[]): Promise<void> {
    if (this.x.done) return
    if (this.zip === undefined) {
      this.write(parts)
    } else {
      // zlib reads its input on the thread pool, after this turn: it needs its own copy.
      const input = Buffer.concat(parts)
      await new Promise<void>((resolve) => this.zip!.write(input, () => resolve()))
      if (this.zipFailure !== undefined) throw this.zipFailure
    }
    while (this.full && !this.x.done) await new Promise<void>((resolve) => (this.waiting = resolve))
  }

  /** Flushes gzip's last bytes and ends the response. */
  async finish(): Promise<void> {
    const zip = this.zip
    if (zip !== undefined && !this.x.done) {
      await new Promise<void>((resolve) => {
        zip.once('end', resolve)
        zip.once('error', () => resolve())
        zip.end()
      })
      if (this.zipFailure !== undefined) throw this.zipFailure
    }
    this.x.endStream()
  }

  release(): void {
    this.zip?.destroy()
  }

  private write(parts: readonly Uint8Array[]): void {
    const { x } = this
    if (x.done) return
    for (const part of parts) if (!x.write(part)) this.full = true
  }

  private wakeUp(): void {
    const waiting = this.waiting
    this.waiting = undefined
    waiting?.()
  }
}
