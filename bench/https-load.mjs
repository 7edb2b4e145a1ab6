#!/usr/bin/env node
/**
 * bench/https-load.mjs — the client of bench/tls.mjs: `--connections` keep-alive
 * connections, each POSTing `--bytes`-byte appends back to back to its own stream for
 * `--seconds`, over http or https (a self-signed certificate is trusted via --ca). Prints
 * one JSON line: { appends, seconds, errors }. The C load generator speaks no TLS, so TLS
 * and plain are both measured with this one client, whose own ceiling the null uWS handler
 * shows in the same run.
 *
 *   node bench/https-load.mjs --url https://127.0.0.1:PORT --ca cert.pem --connections 16 --seconds 5
 */
import { readFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: { url: { type: 'string' }, ca: { type: 'string' }, connections: { type: 'string', default: '16' }, seconds: { type: 'string', default: '5' }, bytes: { type: 'string', default: '256' }, prefix: { type: 'string', default: 'tls' } },
})
const url = new URL(values.url)
const tls = url.protocol === 'https:'
const connections = Number(values.connections)
const agent = tls ? new https.Agent({ keepAlive: true, maxSockets: connections, ca: readFileSync(values.ca) }) : new http.Agent({ keepAlive: true, maxSockets: connections })
const lib = tls ? https : http
const body = Buffer.alloc(Number(values.bytes), 'x')

function request(method, path, payload) {
  return new Promise((resolve, reject) => {
    const req = lib.request({ host: url.hostname, port: url.port, method, path, agent, headers: { 'content-type': 'application/octet-stream', 'content-length': payload.length } }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode))
    })
    req.on('error', reject)
    req.end(payload)
  })
}

const paths = Array.from({ length: connections }, (_, i) => `/v1/stream/${values.prefix}-${process.pid}-${i}`)
for (const path of paths) await request('PUT', path, Buffer.alloc(0))
let appends = 0
let errors = 0
const started = performance.now()
const deadline = started + Number(values.seconds) * 1000
await Promise.all(
  paths.map(async (path) => {
    while (performance.now() < deadline) {
      const status = await request('POST', path, body).catch(() => 0)
      if (status === 204) appends++
      else errors++
    }
  }),
)
console.log(JSON.stringify({ appends, seconds: (performance.now() - started) / 1000, errors }))
agent.destroy()
