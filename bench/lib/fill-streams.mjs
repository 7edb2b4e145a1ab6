// Fills a data directory through the engine in this process (HTTP would take minutes per
// million appends or streams); used by bench/scale.mjs and test/integration/big-stream.test.ts.
//   node bench/lib/fill-streams.mjs DIR APPENDS CHECKPOINT_AT [--idle N] [--segment-bytes N] PATH:json|json64|binary...
// Append i of a JSON stream is {"i":i} (json64: padded to 64 bytes stored); of a binary
// stream the bytes `b<i>;`. --idle N first
// creates N empty streams idle/0 … idle/N-1. A checkpoint is written after CHECKPOINT_AT
// appends per stream; then the process exits without closing storage, as after a kill: the
// later appends are only in the WAL (buffered class: written).

import { NodeFsIo } from '../../dist/io/node-fs.js'
import { parseContentType } from '../../dist/protocol/headers.js'
import { DurableStorage } from '../../dist/storage/durable.js'
import { LmdbRegistry } from '../../dist/storage/registry/registry-lmdb.js'
import { Engine } from '../../dist/streams/engine.js'
import { recoveryTarget } from '../../dist/streams/recovery.js'

const [dataDir, appendsArg, checkpointArg, ...rest] = process.argv.slice(2)
const flag = (name, fallback) => {
  const at = rest.indexOf(name)
  return at < 0 ? fallback : Number(rest.splice(at, 2)[1])
}
const idle = flag('--idle', 0)
const segmentBytes = flag('--segment-bytes', 64 * 1024 * 1024)
const streams = rest
const appends = Number(appendsArg)
const checkpointAt = Number(checkpointArg)
const MiB = 1024 * 1024
const storage = new DurableStorage({
  io: new NodeFsIo(),
  dataDir,
  walSegmentBytes: 64 * MiB,
  checkpointIntervalMs: 3_600_000,
  checkpointWalBytes: Number.MAX_SAFE_INTEGER,
  openFilesMax: 256,
  readCacheBytes: 64 * MiB,
  salvage: false,
  segmentBytes,
  checkpointChangedStreams: 20_000,
  openRegistry: async (dir) => LmdbRegistry.open(dir),
})
const engine = new Engine({ storage, defaultDurability: 'buffered', readBytesMax: MiB, expirySweepMs: 1000 })
await storage.recover(recoveryTarget(engine, 10_000))
const octets = parseContentType('application/octet-stream')
for (let i = 0; i < idle; i += 1000) {
  const batch = []
  for (let j = i; j < Math.min(idle, i + 1000); j++) {
    batch.push(engine.create({ path: `idle/${j}`, contentType: octets, ttlSeconds: undefined, expiresAtMs: undefined, closed: false, body: new Uint8Array(0), fork: undefined, durability: undefined }))
  }
  await Promise.all(batch)
}
const targets = streams.map((spec) => {
  const [path, kind] = spec.split(':')
  const json = kind !== 'binary'
  return { path, json, pad: kind === 'json64', contentType: parseContentType(json ? 'application/json' : 'application/octet-stream') }
})
for (const { path, contentType } of targets) {
  await engine.create({ path, contentType, ttlSeconds: undefined, expiresAtMs: undefined, closed: false, body: new Uint8Array(0), fork: undefined, durability: undefined })
}
let inflight = []
for (let i = 0; i < appends; i++) {
  for (const { path, json, pad, contentType } of targets) {
    // json64: {"i":i,"p":"…"} padded so that the stored message, with its ',', is 64 bytes.
    const body = Buffer.from(pad ? `{"i":${i},"p":"${'p'.repeat(50 - String(i).length)}"}` : json ? `{"i":${i}}` : `b${i};`)
    inflight.push(engine.append({ path, contentType, body, close: false, producer: undefined, streamSeq: undefined }))
  }
  if (inflight.length >= 4096) {
    await Promise.all(inflight)
    inflight = []
  }
  if (i + 1 === checkpointAt) {
    await Promise.all(inflight)
    inflight = []
    await storage.checkpoint()
  }
}
await Promise.all(inflight)
process.exit(0)
