// bench/group-commit.mjs — shows that group commit keeps the fsync rate flat as writers grow:
// an in-process server (fsync class, real disk) whose I/O backend counts datasync calls, driven
// by W concurrent HTTP writers (one stream each, one append in flight per writer) for a fixed
// time. Reports appends/s, datasyncs/s and appends per datasync for each W.
// Usage: npm run build && node bench/group-commit.mjs [--seconds 3] [--writers 1,4,16,64]

import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer } from '../dist/index.js'
import { NodeFsIo } from '../dist/io/node-fs.js'

const args = process.argv.slice(2)
const option = (name, fallback) => {
  const at = args.indexOf(`--${name}`)
  return at === -1 ? fallback : args[at + 1]
}
const seconds = Number(option('seconds', '3'))
const writerCounts = option('writers', '1,4,16,64').split(',').map(Number)

class CountingIo extends NodeFsIo {
  datasyncs = 0
  async writev(file, buffers, position, datasync) {
    if (datasync) this.datasyncs++
    return super.writev(file, buffers, position, datasync)
  }
  async datasync(file) {
    this.datasyncs++
    return super.datasync(file)
  }
}

function post(agent, port, path, body) {
  return new Promise((resolve, reject) => {
    const req = request({ agent, host: '127.0.0.1', port, method: 'POST', path, headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length } }, (res) => {
      res.resume()
      res.on('end', () => (res.statusCode === 204 ? resolve() : reject(new Error(`status ${res.statusCode}`))))
    })
    req.on('error', reject)
    req.end(body)
  })
}

const results = []
for (const writers of writerCounts) {
  const dataDir = mkdtempSync(join(tmpdir(), 'ringstream-group-commit-'))
  const io = new CountingIo()
  const server = createServer({ port: 0, dataDir, durability: 'fsync' }, { io })
  await server.listen()
  const agent = new Agent({ keepAlive: true, maxSockets: writers })
  for (let w = 0; w < writers; w++) await fetch(`${server.url}/v1/stream/w${w}`, { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream' } })
  const body = Buffer.alloc(256, 1)
  const syncsBefore = io.datasyncs
  const deadline = Date.now() + seconds * 1000
  let appends = 0
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      while (Date.now() < deadline) {
        await post(agent, server.port, `/v1/stream/w${w}`, body)
        appends++
      }
    }),
  )
  const datasyncs = io.datasyncs - syncsBefore
  results.push({ writers, appendsPerSecond: Math.round(appends / seconds), datasyncsPerSecond: Math.round(datasyncs / seconds), appendsPerDatasync: +(appends / datasyncs).toFixed(1) })
  console.log(results[results.length - 1])
  agent.destroy()
  await server.close()
  rmSync(dataDir, { recursive: true, force: true })
}
mkdirSync(new URL('./results/', import.meta.url), { recursive: true })
writeFileSync(new URL('./results/group-commit.json', import.meta.url), JSON.stringify({ benchmark: 'group-commit', date: new Date().toISOString(), node: process.version, cores: cpus().length, seconds, results }, null, 2) + '\n')
