// Integration: GET /metrics of a real server, parsed by a Prometheus text-format parser
// (parse-prometheus-text-format); the counters move with the requests this test makes, the
// gauges follow live reads, and --metrics off removes the endpoint.

import { mkdtempSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, test } from 'vitest'
import { useServer } from '../helpers.js'

const require = createRequire(import.meta.url)
interface Family {
  name: string
  type: string
  metrics: Array<{ value?: string; labels?: Record<string, string>; buckets?: Record<string, string>; count?: string }>
}
const parse = require('parse-prometheus-text-format') as (text: string) => Family[]

async function scrape(base: string): Promise<Map<string, Family>> {
  const res = await fetch(`${base}/metrics`)
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
  return new Map(parse(await res.text()).map((family) => [family.name, family]))
}

function value(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const family = families.get(name)
  if (family === undefined) throw new Error(`no metric ${name}`)
  const sample = family.metrics.find((metric) => Object.entries(labels).every(([key, want]) => metric.labels?.[key] === want))
  return sample === undefined ? 0 : Number(sample.value ?? sample.count)
}

describe('GET /metrics', () => {
  const live = useServer({ durability: 'fsync', dataDir: mkdtempSync(join(tmpdir(), 'ringstream-metrics-')) })

  test('counts responses by route and code, appends and bytes, WAL batches and syncs; gauges live reads', async () => {
    const base = live.url
    const before = await scrape(base)
    const path = `${base}/v1/stream/metrics-${Date.now()}`
    expect((await fetch(path, { method: 'PUT', headers: { 'Content-Type': 'text/plain' } })).status).toBe(201)
    for (let i = 0; i < 5; i++) expect((await fetch(path, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'abcd' })).status).toBe(204)
    expect((await fetch(`${base}/v1/stream/no-such-stream`)).status).toBe(404)
    const waiting = fetch(`${path}?offset=now&live=long-poll`)
    await new Promise((resolve) => setTimeout(resolve, 100))
    const during = await scrape(base)
    expect(value(during, 'ringstream_long_poll_connections')).toBe(1)
    await fetch(path, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'wake' })
    expect((await waiting).status).toBe(200)
    const after = await scrape(base)
    const delta = (name: string, labels: Record<string, string> = {}): number => value(after, name, labels) - value(before, name, labels)
    expect(delta('ringstream_http_responses_total', { route: 'stream', method: 'PUT', code: '201' })).toBe(1)
    expect(delta('ringstream_http_responses_total', { route: 'stream', method: 'POST', code: '204' })).toBe(6)
    expect(delta('ringstream_http_errors_total', { route: 'stream', code: '404' })).toBe(1)
    expect(delta('ringstream_appends_total')).toBe(6)
    expect(delta('ringstream_append_bytes_total')).toBe(24)
    // The create and six appends are WAL records, each batch synced (fsync class).
    expect(delta('ringstream_wal_records_total')).toBe(7)
    expect(delta('ringstream_wal_fsyncs_total')).toBeGreaterThanOrEqual(1)
    expect(delta('ringstream_wal_fsyncs_total')).toBe(delta('ringstream_wal_batches_total'))
    expect(after.get('ringstream_wal_sync_seconds')?.type).toBe('HISTOGRAM')
    expect(value(after, 'ringstream_long_poll_connections')).toBe(0)
    expect(value(after, 'ringstream_streams_resident')).toBeGreaterThanOrEqual(1)
    expect(value(after, 'ringstream_disk_full')).toBe(0)
    expect(after.has('ringstream_process_resident_memory_bytes')).toBe(true)
  })
})

describe('--metrics off', () => {
  const live = useServer({ metrics: false })

  test('there is no /metrics', async () => {
    expect((await fetch(`${live.url}/metrics`)).status).toBe(404)
  })
})
