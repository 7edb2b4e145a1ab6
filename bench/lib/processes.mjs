// bench/lib/processes.mjs — child processes this benchmark starts (killed and their data removed at exit), the load generator, logging.

import { spawn } from 'node:child_process'
import { rmSync } from 'node:fs'
import path from 'node:path'
import { HERE } from './options.mjs'
export const LOADGEN = path.join(HERE, 'loadgen', 'build', 'loadgen')
export const SERVER_CORE = '0'
export const CLIENT_CORE = '1'

// ---------------------------------------------------------------------------------------------
// Process bookkeeping and clean-up

export const live = new Set() // child processes we started
export const tempDirs = new Set()

export function cleanup() {
  for (const child of live) {
    try {
      process.kill(child.pid, 'SIGKILL')
    } catch {}
  }
  live.clear()
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
  tempDirs.clear()
}
process.on('exit', cleanup)
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    console.error(`\nbench: ${signal}, cleaning up`)
    cleanup()
    process.exit(130)
  })
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

export function lastLines(text, n = 5) {
  return text.split('\n').map((l) => l.trimEnd()).filter(Boolean).slice(-n)
}

export function log(message) {
  process.stdout.write(`${message}\n`)
}

// ---------------------------------------------------------------------------------------------
// Load generator

export function runLoadgen(args, { timeoutMs = 300_000 } = {}) {
  return new Promise((resolve) => {
    const child = spawn('taskset', ['-c', CLIENT_CORE, LOADGEN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    live.add(child)
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d.toString()))
    child.stderr.on('data', (d) => (err += d.toString()))
    const timer = setTimeout(() => {
      try {
        process.kill(child.pid, 'SIGINT')
      } catch {}
      setTimeout(() => {
        try {
          process.kill(child.pid, 'SIGKILL')
        } catch {}
      }, 3000).unref()
    }, timeoutMs)
    child.once('exit', (code) => {
      clearTimeout(timer)
      live.delete(child)
      let result
      try {
        result = JSON.parse(out.trim().split('\n').pop())
      } catch {
        result = { failed: true, failReason: `load generator exited ${code} without a result: ${lastLines(err + out, 3).join(' | ')}` }
      }
      if (err.trim()) result.stderr = lastLines(err, 5)
      resolve(result)
    })
  })
}
