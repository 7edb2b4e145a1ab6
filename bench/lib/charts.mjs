// bench/lib/charts.mjs — the SVG charts, drawn by hand.

import { esc, round } from './format.mjs'
import { opts } from './options.mjs'
import { label } from './servers.mjs'

// ---------------------------------------------------------------------------------------------
// SVG charts (hand-made)

export const PALETTE = {
  'rs-fsync-fs': '#1f77b4',
  'rs-fsync-uring': '#17becf',
  'rs-buffered-fs': '#2ca02c',
  'rs-buffered-uring': '#98df8a',
  'rs-memory-fs': '#9467bd',
  'rs-memory-uring': '#c5b0d5',
  'ref-memory': '#d62728',
  'ref-file': '#ff7f0e',
  null: '#7f7f7f',
}

export function niceTicks(min, max, log) {
  if (log) {
    const ticks = []
    for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
      for (const m of [1, 2, 5]) {
        const v = m * 10 ** e
        if (v >= min * 0.999 && v <= max * 1.001) ticks.push(v)
      }
    }
    return ticks
  }
  const span = max - min || 1
  const step0 = 10 ** Math.floor(Math.log10(span / 5))
  const step = [1, 2, 5, 10].map((m) => m * step0).find((s) => span / s <= 6) ?? step0 * 10
  const ticks = []
  for (let v = Math.ceil(min / step) * step; v <= max + 1e-9; v += step) ticks.push(round(v, 6))
  return ticks
}

export function fmtTick(v) {
  if (v >= 1e6) return `${v / 1e6}M`
  if (v >= 1e3) return `${v / 1e3}k`
  return String(v)
}

/** series: [{ id, name, points: [[x, y]], dashed }] */
export function lineChart({ title, subtitle, xLabel, yLabel, series, xLog = true, yLog = false, yMin }) {
  const W = 820
  const H = 440
  const m = { l: 78, r: 250, t: 58, b: 56 }
  const pw = W - m.l - m.r
  const ph = H - m.t - m.b
  const pts = series.flatMap((s) => s.points).filter(([x, y]) => x > 0 && y !== null && y > 0)
  if (!pts.length) return emptyChart(title)
  const xs = pts.map((p) => p[0])
  const ys = pts.map((p) => p[1])
  let x0 = Math.min(...xs)
  let x1 = Math.max(...xs)
  if (x0 === x1) {
    x0 /= 2
    x1 *= 2
  }
  let y0 = yMin ?? (yLog ? 10 ** Math.floor(Math.log10(Math.min(...ys))) : 0)
  let y1 = Math.max(...ys) * 1.1
  if (yLog) y1 = 10 ** Math.ceil(Math.log10(Math.max(...ys)))
  const sx = (x) => m.l + (xLog ? (Math.log10(x) - Math.log10(x0)) / (Math.log10(x1) - Math.log10(x0) || 1) : (x - x0) / (x1 - x0 || 1)) * pw
  const sy = (y) => m.t + ph - (yLog ? (Math.log10(y) - Math.log10(y0)) / (Math.log10(y1) - Math.log10(y0) || 1) : (y - y0) / (y1 - y0 || 1)) * ph
  const parts = []
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">`)
  parts.push(`<rect width="${W}" height="${H}" fill="#fff"/>`)
  parts.push(`<text x="${m.l}" y="24" font-size="16" font-weight="600">${esc(title)}</text>`)
  if (subtitle) parts.push(`<text x="${m.l}" y="42" fill="#555">${esc(subtitle)}</text>`)
  for (const t of niceTicks(y0, y1, yLog)) {
    const y = sy(t)
    parts.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`)
    parts.push(`<text x="${m.l - 8}" y="${y + 4}" text-anchor="end" fill="#333">${fmtTick(t)}</text>`)
  }
  const xTicks = xLog ? [...new Set(xs)].sort((a, b) => a - b) : niceTicks(x0, x1, false)
  for (const t of xTicks) {
    const x = sx(t)
    parts.push(`<line x1="${x}" x2="${x}" y1="${m.t}" y2="${m.t + ph}" stroke="#f0f0f0"/>`)
    parts.push(`<text x="${x}" y="${m.t + ph + 18}" text-anchor="middle" fill="#333">${fmtTick(t)}</text>`)
  }
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`)
  parts.push(`<text x="${m.l + pw / 2}" y="${H - 14}" text-anchor="middle" fill="#333">${esc(xLabel)}</text>`)
  parts.push(`<text transform="translate(18 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle" fill="#333">${esc(yLabel)}</text>`)
  let ly = m.t + 6
  for (const s of series) {
    const p = s.points.filter(([x, y]) => x > 0 && y !== null && y > 0)
    const color = s.color ?? PALETTE[s.id] ?? '#000'
    if (p.length) {
      const d = p.map(([x, y], i) => `${i ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ')
      parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`)
      for (const [x, y] of p) parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3.5" fill="${color}"><title>${esc(`${s.name}: ${fmtTick(x)} → ${round(y, 2)}`)}</title></circle>`)
    }
    parts.push(`<line x1="${m.l + pw + 14}" x2="${m.l + pw + 38}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`)
    parts.push(`<text x="${m.l + pw + 44}" y="${ly + 4}" fill="#222">${esc(s.name)}${p.length ? '' : ' (n/a)'}</text>`)
    ly += 18
  }
  parts.push('</svg>')
  return parts.join('\n')
}

export function emptyChart(title) {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="760" height="120" viewBox="0 0 760 120" font-family="system-ui, sans-serif"><rect width="760" height="120" fill="#fff"/><text x="20" y="30" font-size="16" font-weight="600">${esc(title)}</text><text x="20" y="60" fill="#555">no data in this run</text></svg>`
}

/** groups: [{ name, bars: [{ id, name, value }] }] */
export function barChart({ title, subtitle, yLabel, groups }) {
  const W = 820
  const H = 440
  const m = { l: 78, r: 250, t: 58, b: 56 }
  const pw = W - m.l - m.r
  const ph = H - m.t - m.b
  const values = groups.flatMap((g) => g.bars.map((b) => b.value)).filter((v) => v !== null && v > 0)
  if (!values.length) return emptyChart(title)
  const y1 = Math.max(...values) * 1.12
  const sy = (y) => m.t + ph - (y / y1) * ph
  const parts = []
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">`)
  parts.push(`<rect width="${W}" height="${H}" fill="#fff"/>`)
  parts.push(`<text x="${m.l}" y="24" font-size="16" font-weight="600">${esc(title)}</text>`)
  if (subtitle) parts.push(`<text x="${m.l}" y="42" fill="#555">${esc(subtitle)}</text>`)
  for (const t of niceTicks(0, y1, false)) {
    const y = sy(t)
    parts.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`)
    parts.push(`<text x="${m.l - 8}" y="${y + 4}" text-anchor="end" fill="#333">${fmtTick(t)}</text>`)
  }
  const gw = pw / groups.length
  const ids = [...new Set(groups.flatMap((g) => g.bars.map((b) => b.id)))]
  groups.forEach((g, gi) => {
    const bw = Math.min(44, (gw * 0.8) / Math.max(1, g.bars.length))
    const start = m.l + gi * gw + (gw - bw * g.bars.length) / 2
    g.bars.forEach((b, bi) => {
      const x = start + bi * bw
      const color = PALETTE[b.id] ?? '#000'
      if (b.value !== null && b.value > 0) {
        parts.push(`<rect x="${x.toFixed(1)}" y="${sy(b.value).toFixed(1)}" width="${(bw - 3).toFixed(1)}" height="${(m.t + ph - sy(b.value)).toFixed(1)}" fill="${color}"><title>${esc(`${b.name}: ${round(b.value, 1)}`)}</title></rect>`)
        parts.push(`<text x="${(x + (bw - 3) / 2).toFixed(1)}" y="${(sy(b.value) - 4).toFixed(1)}" text-anchor="middle" font-size="10" fill="#333">${round(b.value, 0)}</text>`)
      } else {
        parts.push(`<text x="${(x + (bw - 3) / 2).toFixed(1)}" y="${m.t + ph - 4}" text-anchor="middle" font-size="10" fill="#999">n/a</text>`)
      }
    })
    parts.push(`<text x="${m.l + gi * gw + gw / 2}" y="${m.t + ph + 18}" text-anchor="middle" fill="#333">${esc(g.name)}</text>`)
  })
  parts.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`)
  parts.push(`<text transform="translate(18 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle" fill="#333">${esc(yLabel)}</text>`)
  let ly = m.t + 6
  for (const id of ids) {
    parts.push(`<rect x="${m.l + pw + 14}" y="${ly - 6}" width="20" height="12" fill="${PALETTE[id] ?? '#000'}"/>`)
    parts.push(`<text x="${m.l + pw + 40}" y="${ly + 4}" fill="#222">${esc(label(id))}</text>`)
    ly += 18
  }
  parts.push('</svg>')
  return parts.join('\n')
}

export function charts(sum) {
  const files = {}
  const writeSeries = []
  for (const id of [...Object.keys(sum.write), ...Object.keys(sum.control)]) {
    const byS = sum.write[id] ?? sum.control[id]
    writeSeries.push({
      id,
      name: label(id),
      dashed: id === 'null' || id.startsWith('ref-'),
      points: Object.values(byS).map((s) => [s.streams, s.status === 'failed' || s.status === 'unavailable' ? null : s.appendsPerSecond]),
    })
  }
  files['write-throughput.svg'] = lineChart({
    title: 'Write throughput vs stream count',
    subtitle: `${opts.writeBody}-byte idempotent appends, ${opts.conns} connections, one append in flight per stream; server on 1 core; median of ${opts.repeat}`,
    xLabel: 'streams (S)',
    yLabel: 'appends/s',
    series: writeSeries,
  })
  const fanSeries = []
  for (const [id, byK] of Object.entries(sum.fanout)) {
    const ok = (s) => s.status !== 'unavailable' && s.p50Us
    fanSeries.push({ id, name: `${label(id)} p50`, points: Object.values(byK).map((s) => [s.subscribers, ok(s) ? s.p50Us / 1000 : null]) })
    fanSeries.push({ id, name: `${label(id)} p99`, dashed: true, points: Object.values(byK).map((s) => [s.subscribers, ok(s) ? s.p99Us / 1000 : null]) })
  }
  files['fanout-latency.svg'] = lineChart({
    title: 'SSE fan-out delivery latency vs subscribers',
    subtitle: `one writer at ${opts.fanoutRate} events/s (256 B), latency = receive time − send time; solid p50, dashed p99`,
    xLabel: 'subscribers (K)',
    yLabel: 'delivery latency (ms, log)',
    yLog: true,
    series: fanSeries,
  })
  const groups = opts.catchupEvents.map((E) => ({
    name: `E = ${E} events/stream (${((opts.catchupStreams * E * opts.catchupBody) / 2 ** 20).toFixed(0)} MiB)`,
    bars: Object.entries(sum.catchup).map(([id, byE]) => ({ id, name: label(id), value: byE[E] && byE[E].status !== 'failed' && byE[E].status !== 'unavailable' ? byE[E].mibPerSecond : null })),
  }))
  files['catchup-throughput.svg'] = barChart({
    title: 'Catch-up read throughput',
    subtitle: `${opts.catchupStreams} readers at once, each reading its own stream of 1-KiB events from offset=-1 to the tail`,
    yLabel: 'MiB/s',
    groups,
  })
  return files
}
