// bench/lib/summary.mjs — medians per configuration, ratios against the null handler and the reference, and the targets.

import { fmtInt, fmtMs, fmtPct, fmtX, median, round } from './format.mjs'
import { runs } from './scenarios.mjs'
import { label } from './servers.mjs'

// ---------------------------------------------------------------------------------------------
// Summaries, ratios and targets

export function summarize() {
  const groups = new Map()
  for (const r of runs) {
    const key = `${r.scenario}|${r.server}|${r.streams ?? ''}|${r.subscribers ?? ''}|${r.events ?? ''}`
    if (!groups.has(key)) groups.set(key, [])
    groups.get(key).push(r)
  }
  const out = { write: {}, control: {}, fanout: {}, catchup: {}, batch: {} }
  for (const [, list] of groups) {
    const r0 = list[0]
    const ok = list.filter((r) => r.status === 'ok' || r.status === 'errors')
    const lgs = ok.map((r) => r.loadgen)
    const status = list.every((r) => r.status === 'unavailable')
      ? 'unavailable'
      : list.some((r) => r.status === 'failed')
        ? 'failed'
        : list.some((r) => r.status === 'errors')
          ? 'errors'
          : 'ok'
    const s = {
      server: r0.server,
      label: label(r0.server),
      status,
      repeats: list.length,
      errors: list.filter((r) => r.error).map((r) => `rep ${r.rep}: ${r.error}`),
      rssStartMiB: round(median(ok.map((r) => r.rss?.startMiB)), 1),
      rssP50MiB: round(median(ok.map((r) => r.rss?.p50MiB)), 1),
      rssPeakMiB: round(median(ok.map((r) => r.rss?.peakMiB)), 1),
      rssPeakMaxMiB: ok.length ? Math.max(...ok.map((r) => r.rss?.peakMiB ?? 0)) : null,
      loadgenCpu: median(lgs.map((l) => l.loadgenCpu)),
      serverCpu: median(lgs.map((l) => l.serverCpu)),
      otherCpu: median(lgs.map((l) => l.otherCpu)),
      otherCpuMax: lgs.length ? Math.max(...lgs.map((l) => l.otherCpu ?? 0)) : null,
      stealCpu: median(lgs.map((l) => l.stealCpu)),
    }
    if (r0.scenario === 'write' || r0.scenario === 'control') {
      Object.assign(s, {
        streams: r0.streams,
        appendsPerSecond: median(lgs.map((l) => l.appendsPerSecond)),
        appendsPerSecondRuns: lgs.map((l) => round(l.appendsPerSecond)),
        p50Us: median(lgs.map((l) => l.latency?.p50Us)),
        p99Us: median(lgs.map((l) => l.latency?.p99Us)),
        p999Us: median(lgs.map((l) => l.latency?.p999Us)),
        verified: r0.server === 'null' ? null : ok.length > 0 && list.every((r) => r.loadgen?.verify?.done && !r.loadgen.verify.lengthMismatches && !r.loadgen.verify.contentMismatches),
      })
      ;(out[r0.scenario][r0.server] ??= {})[r0.streams] = s
    } else if (r0.scenario === 'batch') {
      const recordsPerSecond = (l) => l.appendsPerSecond * r0.records
      Object.assign(s, {
        streams: r0.streams,
        records: r0.records,
        recordBytes: r0.recordBytes,
        recordsPerSecond: median(lgs.map(recordsPerSecond)),
        recordsPerSecondRuns: lgs.map((l) => round(recordsPerSecond(l))),
        // Body bytes per second: each POST is "[" + records × (record + ",") with the last "," a "]".
        mibPerSecond: median(lgs.map((l) => (l.appendsPerSecond * l.bodyBytes) / 2 ** 20)),
        p50Us: median(lgs.map((l) => l.latency?.p50Us)),
        p99Us: median(lgs.map((l) => l.latency?.p99Us)),
        verified: r0.server === 'null' ? null : ok.length > 0 && list.every((r) => r.loadgen?.verify?.done && !r.loadgen.verify.lengthMismatches),
      })
      ;(out.batch[r0.server] ??= {})[r0.streams] = s
    } else if (r0.scenario === 'fanout') {
      Object.assign(s, {
        subscribers: r0.subscribers,
        p50Us: median(lgs.map((l) => l.delivery?.p50Us)),
        p99Us: median(lgs.map((l) => l.delivery?.p99Us)),
        p999Us: median(lgs.map((l) => l.delivery?.p999Us)),
        maxUs: median(lgs.map((l) => l.delivery?.maxUs)),
        eventsSent: round(median(lgs.map((l) => l.eventsSent))),
        eventsPlanned: round(median(lgs.map((l) => l.eventsPlanned))),
        allDelivered: ok.length > 0 && list.every((r) => r.loadgen?.allDelivered === true),
        missing: list.reduce((a, r) => a + (r.loadgen?.missing ?? 0), 0),
        duplicates: list.reduce((a, r) => a + (r.loadgen?.duplicates ?? 0), 0),
        writerP50Us: median(lgs.map((l) => l.writer?.p50Us)),
      })
      ;(out.fanout[r0.server] ??= {})[r0.subscribers] = s
    } else if (r0.scenario === 'catchup') {
      Object.assign(s, {
        streams: r0.streams,
        events: r0.events,
        mibPerSecond: median(lgs.map((l) => l.mibPerSecond)),
        mibPerSecondPasses: ok.map((r) => (r.passes ?? []).map((p) => p.mibPerSecond)),
        perReaderP50Us: median(lgs.map((l) => l.perReader?.p50Us)),
        perReaderP99Us: median(lgs.map((l) => l.perReader?.p99Us)),
        totalMiB: median(lgs.map((l) => l.totalBytes / 2 ** 20)),
        requests: median(lgs.map((l) => l.requests)),
        fillAppendsPerSecond: median(ok.map((r) => r.fill?.appendsPerSecond)),
      })
      ;(out.catchup[r0.server] ??= {})[r0.events] = s
    }
  }
  // ratios
  for (const [id, byS] of Object.entries(out.write)) {
    for (const [S, s] of Object.entries(byS)) {
      const ref = (sid) => out.write[sid]?.[S]?.appendsPerSecond ?? out.control[sid]?.[S]?.appendsPerSecond ?? null
      const ratio = (sid) => (s.appendsPerSecond && ref(sid) && s.status !== 'failed' ? s.appendsPerSecond / ref(sid) : null)
      s.vsNull = ratio('null')
      s.vsRefMemory = id === 'ref-memory' ? null : ratio('ref-memory')
      s.vsRefFile = id === 'ref-file' ? null : ratio('ref-file')
      if (out.write['ref-file']?.[S]?.status === 'failed') s.vsRefFile = null
    }
  }
  for (const byK of Object.values(out.fanout)) {
    for (const [K, s] of Object.entries(byK)) {
      const floor = out.fanout.broadcast?.[K]
      s.vsBroadcastP50 = floor?.p50Us && s.p50Us ? s.p50Us / floor.p50Us : null
      s.vsBroadcastP99 = floor?.p99Us && s.p99Us ? s.p99Us / floor.p99Us : null
    }
  }
  for (const byS of Object.values(out.batch)) {
    for (const [S, s] of Object.entries(byS)) {
      const control = out.batch.null?.[S]?.recordsPerSecond
      s.vsNull = s.recordsPerSecond && control ? s.recordsPerSecond / control : null
    }
  }
  for (const [id, byE] of Object.entries(out.catchup)) {
    for (const [E, s] of Object.entries(byE)) {
      const ref = out.catchup['ref-memory']?.[E]?.mibPerSecond
      s.vsRefMemory = id !== 'ref-memory' && ref && s.mibPerSecond ? s.mibPerSecond / ref : null
      const refFile = out.catchup['ref-file']?.[E]?.mibPerSecond
      s.vsRefFile = id !== 'ref-file' && refFile && s.mibPerSecond ? s.mibPerSecond / refFile : null
    }
  }
  return out
}

export function targets(sum, recovery) {
  const rows = []
  const add = (target, config, measured, pass, note) => rows.push({ target, config, measured, pass, note })
  const fsyncConfigs = ['rs-fsync-fs', 'rs-fsync-uring']
  const w = (id, S) => sum.write[id]?.[S]
  const usable = (s) => s && (s.status === 'ok' || s.status === 'errors')
  for (const id of fsyncConfigs) {
    for (const S of [100, 1000]) {
      const s = w(id, S)
      if (!usable(s)) {
        add(`write fsync S=${S} ≥ 80% of null handler`, id, s?.status ?? 'not run', null)
        add(`write fsync S=${S} ≥ 4× reference in-memory`, id, s?.status ?? 'not run', null)
        continue
      }
      add(`write fsync S=${S} ≥ 80% of null handler`, id, s.vsNull === null ? 'no null run' : `${fmtPct(s.vsNull)} (${fmtInt(s.appendsPerSecond)} vs ${fmtInt(sum.control.null?.[S]?.appendsPerSecond)}/s)`, s.vsNull === null ? null : s.vsNull >= 0.8)
      add(`write fsync S=${S} ≥ 4× reference in-memory`, id, s.vsRefMemory === null ? 'no reference run' : `${fmtX(s.vsRefMemory)} (${fmtInt(s.appendsPerSecond)} vs ${fmtInt(w('ref-memory', S)?.appendsPerSecond)}/s)`, s.vsRefMemory === null ? null : s.vsRefMemory >= 4)
    }
    const s100 = w(id, 100)
    add('write fsync S=100 p99 < 2 ms', id, usable(s100) ? `${fmtMs(s100.p99Us)} ms` : s100?.status ?? 'not run', usable(s100) ? s100.p99Us < 2000 : null)
    const s10k = w(id, 10000)
    add('write fsync S=10000 ≥ 60% of null handler', id, usable(s10k) ? (s10k.vsNull === null ? 'no null run' : `${fmtPct(s10k.vsNull)} (${fmtInt(s10k.appendsPerSecond)}/s)`) : s10k?.status ?? 'not run', usable(s10k) && s10k.vsNull !== null ? s10k.vsNull >= 0.6 : null)
  }
  for (const id of fsyncConfigs) {
    const b = Object.values(sum.batch?.[id] ?? {})[0]
    add('batched JSON fsync ≥ 1,000,000 records/s, p99 < 5 ms', id, usable(b) ? `${fmtInt(b.recordsPerSecond)} records/s, p99 ${fmtMs(b.p99Us)} ms` : b?.status ?? 'not run', usable(b) ? b.recordsPerSecond >= 1e6 && b.p99Us < 5000 : null)
  }
  for (const id of Object.keys(sum.fanout).filter((k) => k.startsWith('rs-'))) {
    const f = sum.fanout[id]?.[1000]
    if (!f || f.status === 'unavailable') {
      add('fanout K=1000 p50 < 4 ms, p99 < 10 ms, all delivered', id, f?.status ?? 'not run', null)
      continue
    }
    add('fanout K=1000 p50 < 4 ms, p99 < 10 ms, all delivered', id, `p50 ${fmtMs(f.p50Us)} ms, p99 ${fmtMs(f.p99Us)} ms, ${f.allDelivered ? 'all delivered' : `NOT all delivered (${f.missing} missing, ${f.duplicates} dup)`}`, f.p50Us < 4000 && f.p99Us < 10000 && f.allDelivered)
    add('fanout K=1000 ≤ 1.2× the empty broadcaster at p50 and p99', id, f.vsBroadcastP50 === null ? 'no broadcaster run' : `${fmtX(f.vsBroadcastP50)} at p50, ${fmtX(f.vsBroadcastP99)} at p99`, f.vsBroadcastP50 === null ? null : f.vsBroadcastP50 <= 1.2 && f.vsBroadcastP99 <= 1.2 && f.allDelivered)
  }
  for (const id of Object.keys(sum.catchup).filter((k) => k.startsWith('rs-'))) {
    for (const E of [200, 2000]) {
      const c = sum.catchup[id]?.[E]
      if (!c || c.status === 'unavailable' || c.status === 'failed') {
        add(`catchup E=${E} ≥ 2× reference in-memory MiB/s`, id, c?.status ?? 'not run', null)
        continue
      }
      add(`catchup E=${E} ≥ 2× reference in-memory MiB/s`, id, c.vsRefMemory === null ? 'no reference run' : `${fmtX(c.vsRefMemory)} (${c.mibPerSecond?.toFixed(0)} vs ${sum.catchup['ref-memory']?.[E]?.mibPerSecond?.toFixed(0)} MiB/s)`, c.vsRefMemory === null ? null : c.vsRefMemory >= 2)
    }
  }
  const ref = w('ref-memory', 1000)
  const refPeak = ref?.rssPeakMiB
  const nullPeak = sum.control?.null?.[1000]?.rssPeakMiB
  const floor = nullPeak ? `; the null uWS handler peaks at ${nullPeak} MiB` : ''
  for (const id of fsyncConfigs.concat(['rs-memory-fs'])) {
    const s = w(id, 1000)
    if (!usable(s)) continue
    const measured = `${s.rssPeakMiB} MiB (${s.rssStartMiB ?? '–'} at start) vs ${refPeak} MiB (${ref?.rssStartMiB ?? "–"} at start), ${fmtPct(s.rssPeakMiB / refPeak)}${floor}`
    add('peak RSS during write S=1000 ≤ ¼ of reference (in-memory)', id, refPeak ? measured : 'no reference run', refPeak ? s.rssPeakMiB <= refPeak / 4 : null, 'the reference keeps every append in its heap, so its RSS grows with the appends it accepted')
  }
  if (recovery?.serverRecoveryMsMedian !== undefined && recovery?.serverRecoveryMsMedian !== null) {
    add('recovery 1M records < 1 s', 'rs-fsync-fs', `${recovery.serverRecoveryMsMedian} ms median server recovery (${fmtInt(recovery.records)} records, ${recovery.ranNow ? 'measured in this run' : `from ${recovery.source}, ${recovery.measuredAt}`})`, recovery.records >= 1_000_000 ? recovery.serverRecoveryMsMedian < 1000 : null)
  } else {
    add('recovery 1M records < 1 s', 'rs-fsync-fs', recovery?.note ?? 'not run', null)
  }
  return rows
}
