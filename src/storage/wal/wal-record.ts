// storage/wal/wal-record.ts — the WAL format: batch framing, checksum, record encoding, decoding.
//
// Batch:  u32 crc32(lengthBytes ‖ records) | u32 recordsLength | records   (little-endian)
//         One batch per group commit: one checksum call covers every record in it, and a
//         torn write loses at most the batch that was never acknowledged.
// Record: u32 bodyLength | body
// Body:   u8 type | f64 timeMs | u32 streamId | type-specific fields
//   append (2): f64 position | u8 flags(1 close, 2 producer, 4 stream-seq, 8 data)
//               [str producerId f64 epoch f64 seq] [str streamSeq] [chunk]
//   create (1): str path | str contentType | str requestKey | u8 flags(1 closed, 2 ttl,
//               4 expires, 8 parent) | u8 durability | [f64 ttl] [f64 expiresAt]
//               [u32 parentId] | f64 base | u16 chunkCount | chunk*
//   delete (3): nothing more
//   control (4): str key | u32 valueLength (0xffffffff: the key is removed) | utf8 value
//               (stream id 0: state that belongs to no stream, e.g. subscriptions)
//   chunk:      u32 messageCount (0xffffffff: not JSON) | u32 end* | u32 byteLength | bytes
//   str:        u16 byteLength | utf8
// A zero batch length (and checksum) marks the end of the written part of a segment.

import { crc32 } from 'node:zlib'
import type { Durability } from '../../protocol/headers.js'
import type { AppendChunk, Change } from '../types.js'

export const FRAME_HEADER_BYTES = 8
const RECORD_HEADER_BYTES = 4
const NOT_JSON = 0xffffffff
const DURABILITY_CODES: readonly Durability[] = ['memory', 'buffered', 'fsync']
const enum RecordType {
  Create = 1,
  Append = 2,
  Delete = 3,
  Control = 4,
}
const REMOVED = 0xffffffff

/** A decoded record: the change plus the time it was made. */
export interface WalRecord {
  readonly change: Change
  readonly timeMs: number
}

class Writer {
  private buffer = Buffer.allocUnsafe(64)
  length = 0

  private ensure(extra: number): void {
    if (this.length + extra <= this.buffer.length) return
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + extra))
    this.buffer.copy(grown, 0, 0, this.length)
    this.buffer = grown
  }

  u8(value: number): void {
    this.ensure(1)
    this.buffer.writeUInt8(value, this.length++)
  }

  u16(value: number): void {
    this.ensure(2)
    this.length = this.buffer.writeUInt16LE(value, this.length)
  }

  u32(value: number): void {
    this.ensure(4)
    this.length = this.buffer.writeUInt32LE(value, this.length)
  }

  f64(value: number): void {
    this.ensure(8)
    this.length = this.buffer.writeDoubleLE(value, this.length)
  }

  str(value: string): void {
    const bytes = Buffer.byteLength(value)
    if (bytes > 0xffff) throw new Error('WAL string longer than 65535 bytes')
    this.u16(bytes)
    this.ensure(bytes)
    this.length += this.buffer.write(value, this.length)
  }

  chunkHead(chunk: AppendChunk): void {
    const ends = chunk.messageEnds
    this.u32(ends === undefined ? NOT_JSON : ends.length)
    if (ends !== undefined) for (const end of ends) this.u32(end)
    this.u32(chunk.bytes.length)
  }

  take(): Buffer {
    return this.buffer.subarray(0, this.length)
  }
}

const RECORD_TYPES: Readonly<Record<Change['kind'], RecordType>> = {
  create: RecordType.Create,
  append: RecordType.Append,
  delete: RecordType.Delete,
  control: RecordType.Control,
}

/** Encodes a change as record buffers (header first, payloads as their own views). */
export function encodeRecord(change: Change, timeMs: number): Uint8Array[] {
  const head = new Writer()
  head.u32(0)
  const parts: Uint8Array[] = []
  head.u8(RECORD_TYPES[change.kind])
  head.f64(timeMs)
  head.u32(change.kind === 'control' ? 0 : change.streamId)
  if (change.kind === 'control') {
    head.str(change.key)
    if (change.value === undefined) head.u32(REMOVED)
    else {
      const value = Buffer.from(change.value)
      head.u32(value.length)
      parts.push(value)
    }
  } else if (change.kind === 'append') {
    head.f64(change.position)
    const { producer, streamSeq, chunk } = change
    head.u8((change.close ? 1 : 0) | (producer ? 2 : 0) | (streamSeq !== undefined ? 4 : 0) | (chunk ? 8 : 0))
    if (producer !== undefined) {
      head.str(producer.id)
      head.f64(producer.epoch)
      head.f64(producer.seq)
    }
    if (streamSeq !== undefined) head.str(streamSeq)
    if (chunk !== undefined) {
      head.chunkHead(chunk)
      parts.push(chunk.bytes)
    }
  } else if (change.kind === 'create') {
    head.str(change.path)
    head.str(change.contentType)
    head.str(change.requestKey)
    const { ttlSeconds, expiresAtMs, parentId } = change
    head.u8((change.closed ? 1 : 0) | (ttlSeconds !== undefined ? 2 : 0) | (expiresAtMs !== undefined ? 4 : 0) | (parentId !== undefined ? 8 : 0))
    head.u8(DURABILITY_CODES.indexOf(change.durability))
    if (ttlSeconds !== undefined) head.f64(ttlSeconds)
    if (expiresAtMs !== undefined) head.f64(expiresAtMs)
    if (parentId !== undefined) head.u32(parentId)
    head.f64(change.base)
    head.u16(change.chunks.length)
    for (const chunk of change.chunks) {
      const chunkHead = new Writer()
      chunkHead.chunkHead(chunk)
      parts.push(chunkHead.take(), chunk.bytes)
    }
  }
  const header = head.take()
  let bodyLength = header.length - RECORD_HEADER_BYTES
  for (const part of parts) bodyLength += part.length
  header.writeUInt32LE(bodyLength, 0)
  return [header, ...parts]
}

/** The 8-byte header that frames a batch of encoded records. */
export function batchHeader(records: readonly Uint8Array[], recordsLength: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES)
  header.writeUInt32LE(recordsLength, 4)
  let crc = crc32(header.subarray(4))
  for (const buffer of records) crc = crc32(buffer, crc)
  header.writeUInt32LE(crc, 0)
  return header
}

/** Reads the fields of one record at a time; one reader serves a whole batch. */
class Reader {
  private readonly view: DataView
  /** The buffer's memory, looked up once: `buffer.buffer` is a call into the runtime. */
  private readonly memory: ArrayBufferLike
  private readonly memoryOffset: number
  at = 0
  end = 0

  constructor(private readonly buffer: Buffer) {
    this.memory = buffer.buffer
    this.memoryOffset = buffer.byteOffset
    this.view = new DataView(this.memory, this.memoryOffset, buffer.length)
  }

  /** Starts reading the record body [start, end). */
  record(start: number, end: number): this {
    this.at = start
    this.end = end
    return this
  }

  private need(bytes: number): void {
    if (this.at + bytes > this.end) throw new RangeError('WAL record shorter than its fields')
  }

  u8(): number {
    this.need(1)
    return this.buffer[this.at++]!
  }

  u16(): number {
    this.need(2)
    const value = this.view.getUint16(this.at, true)
    this.at += 2
    return value
  }

  u32(): number {
    this.need(4)
    const value = this.view.getUint32(this.at, true)
    this.at += 4
    return value
  }

  f64(): number {
    this.need(8)
    const value = this.view.getFloat64(this.at, true)
    this.at += 8
    return value
  }

  str(): string {
    const length = this.u16()
    this.need(length)
    const value = this.buffer.toString('utf8', this.at, this.at + length)
    this.at += length
    return value
  }

  /** A view of the next `length` bytes (a plain Uint8Array: cheaper to make than a Buffer). */
  bytes(length: number): Uint8Array {
    this.need(length)
    const value = new Uint8Array(this.memory, this.memoryOffset + this.at, length)
    this.at += length
    return value
  }

  chunk(): AppendChunk {
    const count = this.u32()
    let messageEnds: number[] | undefined
    if (count !== NOT_JSON) {
      messageEnds = []
      for (let i = 0; i < count; i++) messageEnds.push(this.u32())
    }
    return { messageEnds, bytes: this.bytes(this.u32()) }
  }
}

export type FrameCheck = { kind: 'end' } | { kind: 'bad'; reason: string } | { kind: 'ok'; bodyLength: number }

/** Checks the batch frame at `position`: end of log, a damaged frame, or a valid one. */
export function checkFrame(buffer: Buffer, position: number, limit: number): FrameCheck {
  if (position + FRAME_HEADER_BYTES > limit) return position === limit ? { kind: 'end' } : { kind: 'bad', reason: 'truncated frame header' }
  const bodyLength = buffer.readUInt32LE(position + 4)
  if (bodyLength === 0) return buffer.readUInt32LE(position) === 0 ? { kind: 'end' } : { kind: 'bad', reason: 'zero length with a checksum' }
  if (position + FRAME_HEADER_BYTES + bodyLength > limit) return { kind: 'bad', reason: 'frame runs past the end of the segment' }
  // One checksum call over length and body, which are contiguous.
  if (crc32(buffer.subarray(position + 4, position + FRAME_HEADER_BYTES + bodyLength)) !== buffer.readUInt32LE(position)) {
    return { kind: 'bad', reason: 'checksum mismatch' }
  }
  return { kind: 'ok', bodyLength }
}

/** Calls `visit` for each record of a batch that checkFrame accepted. */
export function forEachRecord(buffer: Buffer, position: number, recordsLength: number, visit: (record: WalRecord) => void): void {
  const end = position + FRAME_HEADER_BYTES + recordsLength
  const reader = new Reader(buffer)
  let at = position + FRAME_HEADER_BYTES
  while (at < end) {
    const bodyLength = reader.record(at, end).u32()
    if (at + RECORD_HEADER_BYTES + bodyLength > end) throw new RangeError('WAL record runs past the end of its batch')
    visit(decodeRecord(reader.record(at + RECORD_HEADER_BYTES, at + RECORD_HEADER_BYTES + bodyLength)))
    at += RECORD_HEADER_BYTES + bodyLength
  }
}

/** Decodes the record body `reader` is at. Byte payloads are views into its buffer. */
function decodeRecord(reader: Reader): WalRecord {
  const type = reader.u8()
  const timeMs = reader.f64()
  const streamId = reader.u32()
  if (type === RecordType.Delete) return { timeMs, change: { kind: 'delete', streamId } }
  if (type === RecordType.Control) {
    const key = reader.str()
    const length = reader.u32()
    let value: string | undefined
    if (length !== REMOVED) {
      const bytes = reader.bytes(length)
      value = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8')
    }
    return { timeMs, change: { kind: 'control', key, value } }
  }
  if (type === RecordType.Append) {
    const position = reader.f64()
    const flags = reader.u8()
    const producer = flags & 2 ? { id: reader.str(), epoch: reader.f64(), seq: reader.f64() } : undefined
    const streamSeq = flags & 4 ? reader.str() : undefined
    const chunk = flags & 8 ? reader.chunk() : undefined
    return { timeMs, change: { kind: 'append', streamId, position, chunk, close: (flags & 1) !== 0, producer, streamSeq } }
  }
  if (type !== RecordType.Create) throw new RangeError(`unknown WAL record type ${type}`)
  const path = reader.str()
  const contentType = reader.str()
  const requestKey = reader.str()
  const flags = reader.u8()
  const durability = DURABILITY_CODES[reader.u8()]
  if (durability === undefined) throw new RangeError('unknown durability code')
  const ttlSeconds = flags & 2 ? reader.f64() : undefined
  const expiresAtMs = flags & 4 ? reader.f64() : undefined
  const parentId = flags & 8 ? reader.u32() : undefined
  const base = reader.f64()
  const chunks: AppendChunk[] = []
  for (let count = reader.u16(); count > 0; count--) chunks.push(reader.chunk())
  return {
    timeMs,
    change: { kind: 'create', streamId, path, contentType, requestKey, ttlSeconds, expiresAtMs, durability, parentId, base, closed: (flags & 1) !== 0, chunks },
  }
}
