// bench/lib/options.mjs — command-line options of bench/run.mjs and the settings derived from them.

import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
export const HERE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const ROOT = path.resolve(HERE, '..')

// ---------------------------------------------------------------------------------------------
// Options

export const { values: argv } = parseArgs({
  options: {
    quick: { type: 'boolean' },
    only: { type: 'string' },
    servers: { type: 'string' },
    baseline: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    repeat: { type: 'string' },
    recovery: { type: 'boolean' },
    'no-build': { type: 'boolean' },
    'tmp-base': { type: 'string' },
    'out-dir': { type: 'string' },
    'quiet-wait': { type: 'string' },
    'write-streams': { type: 'string' },
    conns: { type: 'string' },
    'fanout-subs': { type: 'string' },
    'catchup-events': { type: 'string' },
    'catchup-passes': { type: 'string' },
    'no-retry-noisy': { type: 'boolean' },
    render: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
  allowPositionals: false,
})

if (argv.help) {
  const source = readFileSync(path.join(HERE, 'run.mjs'), 'utf8')
  console.log(source.slice(source.indexOf('/**'), source.indexOf('*/') + 2))
  process.exit(0)
}

export const quick = argv.quick === true
export const numberList = (raw, fallback) => (raw === undefined ? fallback : raw.split(',').map((v) => Number(v.trim())).filter((v) => v > 0))
export const seconds = (raw, fallback) => {
  if (raw === undefined) return fallback
  const v = Number(raw)
  if (!(v > 0)) throw new Error(`expected a positive number of seconds, got "${raw}"`)
  return v
}

export const ALL_SCENARIOS = ['write', 'control', 'batch', 'fanout', 'catchup', 'recovery']
export const scenarios = new Set(argv.only ? argv.only.split(',').map((s) => s.trim()).filter(Boolean) : ALL_SCENARIOS)
for (const s of scenarios) {
  if (s === 'memory') continue // memory is sampled during every run
  if (!ALL_SCENARIOS.includes(s)) throw new Error(`unknown scenario "${s}" (known: ${ALL_SCENARIOS.join(', ')}, memory)`)
}
if (argv.recovery) scenarios.add('recovery')

export const opts = {
  quick,
  repeat: argv.repeat ? Number(argv.repeat) : quick ? 1 : 2,
  warmupS: seconds(argv.warmup, quick ? 0.5 : 1),
  durationS: seconds(argv.duration, quick ? 1.5 : 3),
  fanoutDurationS: seconds(argv.duration, quick ? 1.5 : 2),
  writeStreams: numberList(argv['write-streams'], quick ? [100, 1000] : [100, 1000, 10000]),
  fanoutSubs: numberList(argv['fanout-subs'], quick ? [100, 1000] : [1, 10, 100, 1000]),
  catchupEvents: numberList(argv['catchup-events'], quick ? [200] : [200, 2000]),
  catchupStreams: 200,
  catchupPasses: argv['catchup-passes'] ? Number(argv['catchup-passes']) : quick ? 3 : 5,
  fanoutRate: 50,
  conns: argv.conns ? Number(argv.conns) : 64,
  writeBody: 256,
  catchupBody: 1024,
  quietWaitS: seconds(argv['quiet-wait'], quick ? 3 : 10),
  // Under the repository, not /tmp: on a /tmp where test runs keep deleting thousands of
  // files, ext4 spends ~0.4 ms per new inode skipping recently deleted ones (measured).
  tmpBase: argv['tmp-base'] ?? path.join(HERE, '.data'),
  // A quick run never replaces the committed full run: it writes beside it, ignored by git.
  outDir: path.resolve(argv['out-dir'] ?? path.join(HERE, 'results', ...(quick ? ['quick'] : []))),
  runRecovery: argv.recovery === true,
  retryNoisy: argv['no-retry-noisy'] !== true,
  noisyCpu: 0.25,
  noisyRetries: 2,
}
