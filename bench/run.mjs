#!/usr/bin/env node
/**
 * bench/run.mjs — ringstream against the Node reference server (@durable-streams/server) and a
 * null uWebSockets.js handler, on the same machine with the same CPU budget: the server under
 * test runs alone on core 0 (`taskset -c 0`), the load generator (bench/loadgen/loadgen.c,
 * compiled here) and this script on core 1.
 *
 * Scenarios (shaped like ElectricSQL's ds-bench):
 *   write    S streams, one idempotent producer each, 256-byte POSTs, 64 keep-alive connections,
 *            at most one append in flight per stream; appends/s and latency; every stream read
 *            back and checked against the acknowledged appends.
 *   control  the write load against bench/null-server.mjs (reads the body, answers 204): the
 *            ceiling of uWS + one JS callback per request on one core, and of the load generator.
 *   batch    batched JSON: 16 streams over 16 connections, each POST a JSON array of 100
 *            records of 64 bytes; records/s, body MiB/s and latency; the records read back and
 *            counted. The null handler is fed the same bodies.
 *   fanout   one stream, K SSE subscribers from offset=now, one writer at 50 events/s carrying
 *            their send time; delivery latency and an exactly-once check.
 *   catchup  M=200 streams pre-filled with E 1-KiB events, M readers at once from offset=-1 to
 *            the tail; MiB/s and per-reader latency. Servers run side by side, passes interleaved.
 *   recovery bench/recovery.mjs results (run in full with --recovery, else read from
 *            bench/results/recovery.json).
 *   memory   server RSS (VmRSS every 100 ms) during every run: p50 and peak.
 *
 * Usage: node bench/run.mjs [--quick] [--only write,control,batch,fanout,catchup,recovery]
 *          [--servers id,id,...|glob] [--duration S] [--warmup S] [--repeat N] [--recovery]
 *          [--no-build] [--tmp-base DIR] [--out-dir DIR] [--quiet-wait S] [--baseline DIR] [--conns N] [--help]
 *   --conns N      connections of the write load (default 64): latency by load
 *   --baseline DIR also runs DIR's built ringstream (fsync, both backends) as base-fsync-fs/-uring,
 *                  interleaved with this one: before/after figures of a change from one run
 * See bench/README.md for every option, the server ids and how to read the results.
 */

import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { charts } from './lib/charts.mjs'
import { round } from './lib/format.mjs'
import { build, machineFacts } from './lib/machine.mjs'
import { markdown } from './lib/markdown.mjs'
import { ROOT, argv, opts, scenarios } from './lib/options.mjs'
import { CLIENT_CORE, cleanup, log } from './lib/processes.mjs'
import { BATCH, measure, recoveryResults, runCatchup, runFanout, runWrite, runs } from './lib/scenarios.mjs'
import { selectServers, unavailable } from './lib/servers.mjs'
import { summarize, targets } from './lib/summary.mjs'

// ---------------------------------------------------------------------------------------------
// Main

/** --render FILE: rebuild bench.md and the charts from an existing bench.json. */
function render(file) {
  const result = JSON.parse(readFileSync(file, 'utf8'))
  Object.assign(opts, result.options, { outDir: opts.outDir })
  runs.push(...result.runs)
  for (const [id, reason] of Object.entries(result.unavailable ?? {})) unavailable.set(id, reason)
  const summary = summarize()
  result.summary = summary
  result.targets = targets(summary, result.recovery)
  mkdirSync(opts.outDir, { recursive: true })
  process.argv = [process.argv[0], process.argv[1], ...(result.argv ?? [])]
  writeFileSync(path.join(opts.outDir, 'bench.json'), `${JSON.stringify(result, null, 2)}\n`)
  writeFileSync(path.join(opts.outDir, 'bench.md'), markdown(result))
  for (const [name, svg] of Object.entries(charts(summary))) writeFileSync(path.join(opts.outDir, name), `${svg}\n`)
  log(`bench: rendered ${path.relative(ROOT, opts.outDir) || '.'}/bench.md and charts from ${file}`)
}

async function main() {
  if (argv.render) return render(path.resolve(argv.render))
  const t0 = Date.now()
  // This script and the load generator share core 1; the server gets core 0 alone.
  spawnSync('taskset', ['-pc', CLIENT_CORE, String(process.pid)], { stdio: 'ignore' })
  if (os.cpus().length < 2) log('bench: WARNING: fewer than 2 CPUs; server and load generator will share a core')
  build()
  const machine = machineFacts()
  log(`bench: ${machine.cpuModel} × ${machine.nproc}, ${machine.kernel}, Node ${machine.node}; data in ${opts.tmpBase} (${machine.filesystem})`)
  log(`bench: scenarios ${[...scenarios].join(', ')}; repeat ${opts.repeat}, warm-up ${opts.warmupS} s, window ${opts.durationS} s\n`)

  // write + control, interleaved: every repeat walks all servers for every S (A B A B).
  const writeServers = scenarios.has('write') ? selectServers('write') : []
  // The control (null handler) runs with the write scenario unless --servers leaves it out.
  const controlServers = scenarios.has('control') || scenarios.has('write') ? selectServers('control') : []
  const writeAll = [...controlServers, ...writeServers]
  if (writeAll.length) {
    for (let rep = 1; rep <= opts.repeat; rep++) {
      for (const S of opts.writeStreams) {
        for (const id of writeAll) {
          if (unavailable.has(id) && rep > 1) continue
          if (rep > 1 && id.startsWith('ref-') && runs.some((r) => r.server === id && r.streams === S && (r.scenario === 'write') && (r.status === 'failed' || r.status === 'errors'))) {
            log(`write    ${id.padEnd(17)} S=${S} rep ${rep}: skipped (failed in an earlier repeat)`)
            continue
          }
          await measure(() => runWrite(id, S, rep))
        }
      }
    }
  }
  if (scenarios.has('batch')) {
    const servers = selectServers('batch')
    for (let rep = 1; rep <= opts.repeat; rep++) {
      for (const id of servers) {
        if (unavailable.has(id) && rep > 1) continue
        await measure(() => runWrite(id, BATCH.streams, rep, BATCH))
      }
    }
  }
  if (scenarios.has('fanout')) {
    const servers = selectServers('fanout')
    for (let rep = 1; rep <= opts.repeat; rep++) {
      for (const K of opts.fanoutSubs) {
        for (const id of servers) {
          if (unavailable.has(id) && rep > 1) continue
          await measure(() => runFanout(id, K, rep))
        }
      }
    }
  }
  if (scenarios.has('catchup')) {
    await runCatchup(selectServers('catchup'))
  }
  const recovery = scenarios.has('recovery') ? await recoveryResults() : undefined

  const summary = summarize()
  const tgt = targets(summary, recovery)
  const result = {
    benchmark: 'ringstream bench/run.mjs',
    argv: process.argv.slice(2),
    machine,
    options: opts,
    elapsedSeconds: round((Date.now() - t0) / 1000, 1),
    scenarioSeconds: Object.fromEntries(['write', 'control', 'batch', 'fanout', 'catchup'].map((sc) => [sc, round(runs.filter((r) => r.scenario === sc).reduce((a, r) => a + (r.elapsedMs ?? 0), 0) / 1000, 1)])),
    unavailable: Object.fromEntries(unavailable),
    targets: tgt,
    summary,
    recovery,
    runs,
  }
  mkdirSync(opts.outDir, { recursive: true })
  writeFileSync(path.join(opts.outDir, 'bench.json'), `${JSON.stringify(result, null, 2)}\n`)
  writeFileSync(path.join(opts.outDir, 'bench.md'), markdown(result))
  for (const [name, svg] of Object.entries(charts(summary))) writeFileSync(path.join(opts.outDir, name), `${svg}\n`)

  log('\n== Targets ==')
  for (const t of tgt) log(`${t.pass === null ? ' n/a' : t.pass ? 'PASS' : 'FAIL'}  ${t.target} [${t.config}]: ${t.measured}`)
  log(`\nbench: done in ${result.elapsedSeconds} s; wrote ${path.relative(ROOT, opts.outDir)}/bench.json, bench.md, write-throughput.svg, fanout-latency.svg, catchup-throughput.svg`)
}

main().catch((error) => {
  console.error(`bench: ${error.stack ?? error.message}`)
  cleanup()
  process.exit(1)
})

