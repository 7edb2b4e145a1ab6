// cluster/replication-wire.ts — the messages a shard's leader and its followers exchange
// over one TCP connection per follower (opened by the follower), and their framing:
//
//   message: u32 bodyLength | u8 type | body                  (little-endian)
//   HELLO   (follower → leader)  JSON {cluster, shard, nodeId, epochs, lsn}: its epoch history and WAL end
//   WELCOME (leader → follower)  JSON {epoch, from, epochs}: cut your WAL to `from`; batches
//                                follow from there; `epochs` start at or after it
//   REFUSE  (either way)         JSON {reason}; the connection closes after it
//   FRAMES  (leader → follower)  f64 epoch | f64 fromLsn | f64 committedLsn | u8 sync | WAL batches
//   COMMIT  (leader → follower)  f64 epoch | f64 committedLsn
//   ACK     (follower → leader)  f64 lsn: written (synced when the batch asked for it) up to here
//   SNAPSHOT      (leader → follower) JSON {lsn, epochs}: instead of WELCOME when the follower is
//                 behind what the leader's WAL keeps; a copy of the leader's data follows:
//   SNAPSHOT_FILE JSON {path}: the bytes of this file (relative to the data directory) follow
//   SNAPSHOT_DATA the next bytes of the current file
//   SNAPSHOT_END  nothing: the copy is whole; the follower installs it and starts again
//
// The batches travel exactly as the leader's WAL holds them (checksums included): the
// follower writes the same bytes at the same LSNs and applies them with recovery's code.
// A plain socket rather than HTTP: one write per batch and follower, no request to parse.

export const enum MessageType {
  Hello = 1,
  Welcome = 2,
  Refuse = 3,
  Frames = 4,
  Commit = 5,
  Ack = 6,
  Snapshot = 7,
  SnapshotFile = 8,
  SnapshotData = 9,
  SnapshotEnd = 10,
}

const HEAD_BYTES = 5
const FRAMES_HEAD_BYTES = 25
/** A message larger than this is a broken peer, not a batch (batches are at most a few MiB). */
export const MESSAGE_BYTES_MAX = 256 * 1024 * 1024

export interface Hello {
  readonly cluster: string
  readonly shard: string
  readonly nodeId: string
  readonly epochs: ReadonlyArray<readonly [number, number]>
  readonly lsn: number
}

export interface Welcome {
  readonly epoch: number
  readonly from: number
  readonly epochs: ReadonlyArray<readonly [number, number]>
}

export interface FramesMessage {
  readonly epoch: number
  readonly fromLsn: number
  readonly committedLsn: number
  readonly sync: boolean
  readonly frames: Buffer
}

export interface SnapshotBegin {
  readonly lsn: number
  readonly epochs: ReadonlyArray<readonly [number, number]>
}

export type Message =
  | { readonly type: MessageType.Hello; readonly hello: Hello }
  | { readonly type: MessageType.Welcome; readonly welcome: Welcome }
  | { readonly type: MessageType.Refuse; readonly reason: string }
  | { readonly type: MessageType.Frames; readonly frames: FramesMessage }
  | { readonly type: MessageType.Commit; readonly epoch: number; readonly committedLsn: number }
  | { readonly type: MessageType.Ack; readonly lsn: number }
  | { readonly type: MessageType.Snapshot; readonly snapshot: SnapshotBegin }
  | { readonly type: MessageType.SnapshotFile; readonly path: string }
  | { readonly type: MessageType.SnapshotData; readonly bytes: Buffer }
  | { readonly type: MessageType.SnapshotEnd }

function head(type: MessageType, bodyLength: number, extra: number): Buffer {
  const buffer = Buffer.allocUnsafe(HEAD_BYTES + extra)
  buffer.writeUInt32LE(bodyLength, 0)
  buffer.writeUInt8(type, 4)
  return buffer
}

export function encodeJson(type: MessageType.Hello | MessageType.Welcome | MessageType.Refuse | MessageType.Snapshot | MessageType.SnapshotFile, value: object): Buffer {
  const body = Buffer.from(JSON.stringify(value))
  return Buffer.concat([head(type, body.length, 0), body])
}

/** The head of a FRAMES message; the batches follow as their own buffers (no copy). */
export function encodeFramesHead(epoch: number, fromLsn: number, committedLsn: number, sync: boolean, framesLength: number): Buffer {
  const buffer = head(MessageType.Frames, FRAMES_HEAD_BYTES + framesLength, FRAMES_HEAD_BYTES)
  buffer.writeDoubleLE(epoch, 5)
  buffer.writeDoubleLE(fromLsn, 13)
  buffer.writeDoubleLE(committedLsn, 21)
  buffer.writeUInt8(sync ? 1 : 0, 29)
  return buffer
}

export function encodeCommit(epoch: number, committedLsn: number): Buffer {
  const buffer = head(MessageType.Commit, 16, 16)
  buffer.writeDoubleLE(epoch, 5)
  buffer.writeDoubleLE(committedLsn, 13)
  return buffer
}

export function encodeAck(lsn: number): Buffer {
  const buffer = head(MessageType.Ack, 8, 8)
  buffer.writeDoubleLE(lsn, 5)
  return buffer
}

/** The head of a SNAPSHOT_DATA message of `length` bytes (which follow as their own buffer). */
export function encodeDataHead(length: number): Buffer {
  return head(MessageType.SnapshotData, length, 0)
}

export function encodeEnd(): Buffer {
  return head(MessageType.SnapshotEnd, 0, 0)
}

/** Cuts a byte stream into messages. Throws on a malformed one (the caller drops the peer). */
export class MessageReader {
  private chunks: Buffer[] = []
  private buffered = 0

  push(chunk: Buffer, visit: (message: Message) => void): void {
    this.chunks.push(chunk)
    this.buffered += chunk.length
    for (;;) {
      if (this.buffered < HEAD_BYTES) return
      if (this.chunks[0]!.length < HEAD_BYTES) this.join()
      const bodyLength = this.chunks[0]!.readUInt32LE(0)
      if (bodyLength > MESSAGE_BYTES_MAX) throw new Error(`replication message of ${bodyLength} bytes`)
      // Joined only once the whole message is here: a large batch comes in many chunks.
      if (this.buffered < HEAD_BYTES + bodyLength) return
      if (this.chunks[0]!.length < HEAD_BYTES + bodyLength) this.join()
      const all = this.chunks[0]!
      const body = all.subarray(HEAD_BYTES, HEAD_BYTES + bodyLength)
      const type = all.readUInt8(4) as MessageType
      const rest = all.subarray(HEAD_BYTES + bodyLength)
      if (rest.length > 0) this.chunks[0] = rest
      else this.chunks.shift()
      this.buffered -= HEAD_BYTES + bodyLength
      visit(decode(type, body))
    }
  }

  private join(): void {
    this.chunks = [Buffer.concat(this.chunks, this.buffered)]
  }
}

function decode(type: MessageType, body: Buffer): Message {
  switch (type) {
    case MessageType.Hello:
      return { type, hello: JSON.parse(body.toString('utf8')) as Hello }
    case MessageType.Welcome:
      return { type, welcome: JSON.parse(body.toString('utf8')) as Welcome }
    case MessageType.Refuse:
      return { type, reason: String((JSON.parse(body.toString('utf8')) as { reason: unknown }).reason) }
    case MessageType.Frames:
      if (body.length < FRAMES_HEAD_BYTES) throw new Error('short FRAMES message')
      return {
        type,
        frames: { epoch: body.readDoubleLE(0), fromLsn: body.readDoubleLE(8), committedLsn: body.readDoubleLE(16), sync: body.readUInt8(24) === 1, frames: body.subarray(FRAMES_HEAD_BYTES) },
      }
    case MessageType.Commit:
      return { type, epoch: body.readDoubleLE(0), committedLsn: body.readDoubleLE(8) }
    case MessageType.Ack:
      return { type, lsn: body.readDoubleLE(0) }
    case MessageType.Snapshot:
      return { type, snapshot: JSON.parse(body.toString('utf8')) as SnapshotBegin }
    case MessageType.SnapshotFile:
      return { type, path: String((JSON.parse(body.toString('utf8')) as { path: unknown }).path) }
    case MessageType.SnapshotData:
      return { type, bytes: body }
    case MessageType.SnapshotEnd:
      return { type }
    default:
      throw new Error(`unknown replication message type ${type as number}`)
  }
}
