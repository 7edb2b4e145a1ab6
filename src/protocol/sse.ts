// protocol/sse.ts — Server-Sent Events framing (PROTOCOL §5.7). Payload lines are split on
// CR, LF and CRLF and each gets its own `data:` prefix, so stream bytes can never end an
// event or inject a field. Binary streams are sent as base64 (one line per event).

const LF = 0x0a
const CR = 0x0d
const DATA_PREFIX = Buffer.from('data:')
const NEWLINE = Buffer.from('\n')
const DATA_EVENT_HEAD = Buffer.from('event: data\n')
const EVENT_END = Buffer.from('\n')

export interface ControlEvent {
  streamNextOffset: string
  streamCursor?: string
  upToDate?: boolean
  streamClosed?: boolean
}

const SPACE = 0x20
/** `data:` plus one space: parsers strip a single space after the colon, so a line that
 * starts with a space needs the extra one to survive. Other lines get the bare prefix. */
const DATA_PREFIX_SPACE = Buffer.from('data: ')

function prefixFor(part: Uint8Array, lineStart: number, lineEnd: number): Buffer {
  return lineStart < lineEnd && part[lineStart] === SPACE ? DATA_PREFIX_SPACE : DATA_PREFIX
}

/** One `event: data` frame for text payload bytes (given as parts, read without copying). */
export function textDataFrame(parts: Uint8Array[]): Buffer {
  const chunks: Uint8Array[] = [DATA_EVENT_HEAD]
  let atLineStart = true
  let afterCR = false
  for (const part of parts) {
    let lineStart = 0
    for (let i = 0; i < part.length; i++) {
      const byte = part[i]!
      if (afterCR && byte === LF && i === 0) {
        // The CR that ended the previous part and this LF are one CRLF line break.
        lineStart = 1
        afterCR = false
        continue
      }
      afterCR = false
      if (byte !== LF && byte !== CR) continue
      if (atLineStart) chunks.push(prefixFor(part, lineStart, i))
      chunks.push(part.subarray(lineStart, i), NEWLINE)
      atLineStart = true
      if (byte === CR) {
        if (i + 1 < part.length) {
          if (part[i + 1] === LF) i++
        } else {
          afterCR = true
        }
      }
      lineStart = i + 1
    }
    if (lineStart < part.length) {
      if (atLineStart) chunks.push(prefixFor(part, lineStart, part.length))
      chunks.push(part.subarray(lineStart))
      atLineStart = false
    }
  }
  if (atLineStart) chunks.push(DATA_PREFIX)
  chunks.push(NEWLINE, EVENT_END)
  return Buffer.concat(chunks)
}

export function base64DataFrame(parts: Uint8Array[]): Buffer {
  const bytes = parts.length === 1 ? Buffer.from(parts[0]!.buffer, parts[0]!.byteOffset, parts[0]!.byteLength) : Buffer.concat(parts)
  return Buffer.from(`event: data\ndata:${bytes.toString('base64')}\n\n`)
}

export function controlFrame(event: ControlEvent): Buffer {
  return Buffer.from(`event: control\ndata:${JSON.stringify(event)}\n\n`)
}

export const KEEPALIVE_FRAME = Buffer.from(': keep-alive\n\n')
