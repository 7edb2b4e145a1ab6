// bench/lib/machine.mjs — facts about the machine, waiting for a quiet CPU, building ringstream and the load generator.

import { spawnSync, execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { HERE, ROOT, argv, opts } from './options.mjs'
import { LOADGEN, log, sleep } from './processes.mjs'
export const LOADGEN_SRC = path.join(HERE, 'loadgen', 'loadgen.c')

// ---------------------------------------------------------------------------------------------
// Machine facts

export function sh(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return ''
  }
}

export function machineFacts() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8')
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1]?.trim() ?? 'unknown'
  const mhz = /cpu MHz\s*:\s*(.*)/.exec(cpuinfo)?.[1]?.trim()
  const fs = sh('findmnt', ['-no', 'SOURCE,FSTYPE,OPTIONS', '-T', opts.tmpBase]).replace(/\s+/g, ' ')
  const source = fs.split(/\s+/)[0] ?? ''
  const dev = path.basename(source)
  let disk = ''
  if (dev && existsSync(`/sys/block/${dev}`)) {
    const read = (f) => (existsSync(f) ? readFileSync(f, 'utf8').trim() : '')
    const rotational = read(`/sys/block/${dev}/queue/rotational`)
    const model2 = read(`/sys/block/${dev}/device/model`)
    const sizeGiB = Number(read(`/sys/block/${dev}/size`)) * 512 / 2 ** 30
    disk = `${dev}${model2 ? ` (${model2})` : ''}${dev.startsWith('vd') ? ' (virtio block device)' : ''}, ${sizeGiB.toFixed(0)} GiB, queue/rotational=${rotational || '?'}`
  }
  return {
    cpuModel: model,
    cpuMHz: mhz ? Number(mhz) : undefined,
    nproc: os.cpus().length,
    memTotalMiB: Math.round(os.totalmem() / 2 ** 20),
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    cc: sh('cc', ['--version']).split('\n')[0],
    tmpBase: opts.tmpBase,
    filesystem: fs,
    disk,
    hypervisor: /^flags\s*:.*\bhypervisor\b/m.test(cpuinfo) ? 'yes (cpuinfo flag)' : 'no',
    date: new Date().toISOString(),
  }
}

// ---------------------------------------------------------------------------------------------
// CPU quietness: other work on this 2-core machine distorts every figure, so each run waits
// (up to --quiet-wait seconds) until the machine is idle, and each result records the CPU
// that other processes used during its window.

export function readCpuTotals() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]
  const v = line.trim().split(/\s+/).slice(1).map(Number)
  const busy = v[0] + v[1] + v[2] + v[5] + v[6]
  const total = busy + v[3] + v[4] + (v[7] ?? 0)
  return { busy, total }
}

export async function waitQuiet() {
  const cores = os.cpus().length
  const deadline = Date.now() + opts.quietWaitS * 1000
  let busyCores = 0
  for (;;) {
    const a = readCpuTotals()
    await sleep(300)
    const b = readCpuTotals()
    busyCores = b.total > a.total ? ((b.busy - a.busy) / (b.total - a.total)) * cores : 0
    if (busyCores < 0.2) return { busyCores, waitedMs: opts.quietWaitS * 1000 - (deadline - Date.now()) }
    if (Date.now() > deadline) return { busyCores, waitedMs: opts.quietWaitS * 1000, noisy: true }
    await sleep(700)
  }
}

// ---------------------------------------------------------------------------------------------
// Build

export function build() {
  if (!argv['no-build']) {
    log('bench: npm run build')
    const r = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' })
    if (r.status !== 0) {
      console.error(r.stdout, r.stderr)
      throw new Error('npm run build failed')
    }
  }
  mkdirSync(path.dirname(LOADGEN), { recursive: true })
  const args = ['-O2', '-Wall', '-Wextra', '-Werror', '-o', LOADGEN, LOADGEN_SRC]
  log(`bench: cc ${args.join(' ')}`)
  const r = spawnSync('cc', args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' })
  if (r.status !== 0) {
    console.error(r.stderr)
    throw new Error('compiling the load generator failed')
  }
}
