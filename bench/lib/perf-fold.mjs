// bench/lib/perf-fold.mjs — `perf script -F ip,sym,dso` output folded into stacks (root
// first, `;`-joined, with sample counts), and self time by function and by file. JIT frames
// are named by node's --perf-basic-prof map (`JS:*name file:///…/x.js:line:col`).

const ROOT_URL = new URL('../../', import.meta.url)
const ROOT_PATH = decodeURIComponent(ROOT_URL.pathname)

/** One frame line (`<ip> <sym> (<dso>)`) as a readable frame name. */
function frameName(line) {
  const match = /^\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$/.exec(line)
  if (match === null) return undefined
  let [, sym, dso] = match
  const lib = dso.split('/').at(-1)
  if (sym === '[unknown]') return `[unknown] ${lib.startsWith('perf-') ? '[jit]' : lib}`
  sym = sym.replace(/\+0x[0-9a-f]+$/, '').replaceAll(';', ':')
  if (lib.startsWith('perf-')) return sym.replaceAll(`file://${ROOT_PATH}`, '').replaceAll(ROOT_PATH, '')
  // C++ symbols keep their name without the argument list, which says little and is long.
  return `${sym.replace(/\(.*\)( const)?$/, '')} [${lib}]`
}

/** Map of folded stack → samples. */
export function foldPerfScript(text) {
  const stacks = new Map()
  let frames = []
  const flush = () => {
    if (frames.length > 0) {
      const stack = frames.reverse().join(';')
      stacks.set(stack, (stacks.get(stack) ?? 0) + 1)
    }
    frames = []
  }
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      flush()
      continue
    }
    const name = frameName(line)
    if (name !== undefined) frames.push(name)
  }
  flush()
  return stacks
}

/** The file a frame belongs to: a JS file (without line and column) or a native library. */
function fileOf(frame) {
  const lib = /\[\[?([^\]]+?)\]?\]$/.exec(frame)
  if (lib !== null) return lib[1]
  const js = /\s(\S+?)(?::\d+)*$/.exec(frame)
  return js === null ? frame : js[1]
}

/** What kind of code a frame is: the kernel, uWS, node and V8's native code, libc, the
 * project's JS, node's own JS, or JIT code the map does not name. */
function kindOf(frame) {
  if (frame.includes('[kernel')) return 'kernel'
  if (frame.includes('uws_')) return 'uWS (native)'
  if (/\[libc\.|\[ld-linux|\[libstdc|\[vdso/.test(frame)) return 'libc and other libraries'
  if (frame.includes('[node]')) return 'node and V8 (native: runtime, GC, builtins)'
  if (/ (dist|bench)\//.test(frame)) return 'our JS (dist/, bench/)'
  if (frame.includes('node:')) return "node's JS (node:…)"
  return 'other JIT code and stubs'
}

/** Samples whose leaf is each function, file and kind; samples under each of our JS
 * functions (inclusive); the total. */
export function selfTimes(stacks) {
  const byFunction = new Map()
  const byFile = new Map()
  const byKind = new Map()
  const inclusive = new Map()
  let total = 0
  const add = (map, key, count) => map.set(key, (map.get(key) ?? 0) + count)
  for (const [stack, count] of stacks) {
    const frames = stack.split(';')
    const leaf = frames.at(-1)
    add(byFunction, leaf, count)
    add(byFile, fileOf(leaf), count)
    add(byKind, kindOf(leaf), count)
    for (const frame of new Set(frames)) if (/ (dist|bench)\//.test(frame)) add(inclusive, frame, count)
    total += count
  }
  return { total, byFunction, byFile, byKind, inclusive }
}
