// bench/lib/format.mjs — statistics and number formatting shared by the report.


// ---------------------------------------------------------------------------------------------
// Statistics and formatting

export function round(v, digits = 0) {
  if (v === null || v === undefined || Number.isNaN(v)) return null
  const f = 10 ** digits
  return Math.round(v * f) / f
}

export function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b)
  if (!v.length) return null
  const mid = Math.floor(v.length / 2)
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2
}

export const fmtInt = (v) => (v === null || v === undefined ? '–' : Math.round(v).toLocaleString('en-US'))
export const fmtMs = (us) => (us === null || us === undefined ? '–' : (us / 1000).toFixed(us < 10_000 ? 2 : 1))
export const fmtPct = (r) => (r === null || r === undefined ? '–' : `${Math.round(r * 100)}%`)
export const fmtX = (r) => (r === null || r === undefined ? '–' : `${r.toFixed(r < 10 ? 2 : 1)}×`)
/** Status cell; flags points where the load generator's core was nearly full. */
export const fmtStatus = (s) => `${s.status}${s.loadgenCpu !== null && s.loadgenCpu >= 0.9 ? ' (loadgen-bound)' : ''}`
export const fmtCpu = (c) => (c === null || c === undefined || c < -0.5 ? '–' : Math.max(0, c).toFixed(2))

/** Escapes text for SVG and markdown. */
export const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
