// test/cluster/etcd-harness.ts — a real single-member etcd (Debian's /usr/bin/etcd, package
// etcd-server) for tests: on loopback, client and peer ports below the ephemeral range (so a
// restart after a kill gets its ports back), data and log in a fresh temporary directory.
// Tests can stop it, pause it (SIGSTOP: it holds connections and answers nothing), kill it
// and start it again on the same ports and data. A watchdog shell kills it if the test
// process dies first; startup checks the etcd answering is this one (by its member name).

import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { accessSync, closeSync, constants, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { freePortBelowEphemeral } from '../helpers-ports.js'

export const ETCD_BIN = '/usr/bin/etcd'
/** A single member elects itself in about a second; a loaded machine takes longer. */
const STARTUP_TIMEOUT_MS = 20_000
const HEALTH_POLL_MS = 50
/** SIGSTOP reaches every thread of etcd within milliseconds. */
const STOP_TIMEOUT_MS = 5000
/** etcd runs under this shell, which prints etcd's pid, waits for it and exits with its
 * status, and SIGKILLs it when its stdin (a pipe from the test process) closes: no etcd
 * outlives the test process, however that ends (a vitest worker ends without 'exit' events,
 * and afterAll does not run when a worker dies). */
const WATCHDOG =
  'exec 3<&0 0</dev/null; "$0" "$@" 3<&- 1>&2 & pid=$!; echo $pid; ' +
  '{ read _ <&3; kill -9 $pid 2>/dev/null; } & watcher=$!; exec 3<&-; ' +
  'wait $pid; status=$?; kill $watcher 2>/dev/null; exit $status'

export interface EtcdProcess {
  /** The client URL, e.g. http://127.0.0.1:23456; the same across restart(). */
  readonly url: string
  /** etcd's process id (a new one after restart()). */
  readonly pid: number
  /** SIGTERM, wait for the exit, remove the directory. */
  stop(): Promise<void>
  /** SIGSTOP, resolving once every thread has stopped (the stop is not immediate): from
   * then on the kernel still accepts connections, nothing answers. */
  pause(): Promise<void>
  /** SIGCONT. */
  resume(): void
  /** SIGKILL and wait for the exit; the data directory stays for restart(). */
  kill(): Promise<void>
  /** Stops it if running (SIGTERM), then starts it again on the same ports and data. */
  restart(): Promise<void>
}

export function etcdAvailable(): boolean {
  try {
    accessSync(ETCD_BIN, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** One run of etcd: the watchdog shell (whose exit is etcd's) and etcd's pid. */
interface Run {
  readonly shell: ChildProcess
  readonly pid: number
}

export async function startEtcd(): Promise<EtcdProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'ringstream-etcd-'))
  const clientPort = await freePortBelowEphemeral()
  let peerPort = await freePortBelowEphemeral()
  while (peerPort === clientPort) peerPort = await freePortBelowEphemeral()
  const url = `http://127.0.0.1:${clientPort}`
  const peerUrl = `http://127.0.0.1:${peerPort}`
  const name = basename(dir) // unique: startup checks that the etcd answering is this one
  const log = join(dir, 'etcd.log')
  // The --initial-* flags only matter the first time; a restart finds the member in its data.
  const args = ['--name', name, '--data-dir', join(dir, 'data'), '--listen-client-urls', url, '--advertise-client-urls', url]
  args.push('--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl, '--initial-cluster', `${name}=${peerUrl}`, '--initial-cluster-state', 'new')

  const launch = async (): Promise<Run> => {
    const fd = openSync(log, 'a')
    let shell: ChildProcess
    try {
      shell = spawn('/bin/sh', ['-c', WATCHDOG, ETCD_BIN, ...args], { stdio: ['pipe', 'pipe', fd] })
    } finally {
      closeSync(fd)
    }
    const pid = await firstLine(shell, log)
    const run = { shell, pid }
    try {
      await healthy(run, url, name, log)
    } catch (error) {
      await signalAndWait(run, 'SIGKILL')
      throw error
    }
    return run
  }

  let run: Run
  try {
    run = await launch()
  } catch (error) {
    rmSync(dir, { recursive: true, force: true })
    throw error
  }
  return {
    url,
    get pid() {
      return run.pid
    },
    async stop() {
      await signalAndWait(run, 'SIGTERM')
      rmSync(dir, { recursive: true, force: true })
    },
    async pause() {
      process.kill(run.pid, 'SIGSTOP')
      await stopped(run.pid)
    },
    resume() {
      process.kill(run.pid, 'SIGCONT')
    },
    async kill() {
      await signalAndWait(run, 'SIGKILL')
    },
    async restart() {
      await signalAndWait(run, 'SIGTERM')
      run = await launch()
    },
  }
}

function isDone(run: Run): boolean {
  return run.shell.exitCode !== null || run.shell.signalCode !== null
}

/** Sends `signal` to etcd unless it has exited (SIGCONT first: a paused etcd would not act
 * on SIGTERM) and waits for it to exit. */
async function signalAndWait(run: Run, name: 'SIGTERM' | 'SIGKILL'): Promise<void> {
  if (!isDone(run)) {
    const exited = once(run.shell, 'exit')
    process.kill(run.pid, 'SIGCONT')
    process.kill(run.pid, name)
    await exited
  }
  run.shell.stdin?.destroy()
}

/** etcd's pid, as the watchdog prints it first. */
function firstLine(shell: ChildProcess, log: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let seen = ''
    const onExit = () => reject(new Error(`etcd exited (${shell.exitCode}) at once: ${tail(log)}`))
    const onData = (chunk: Buffer) => {
      seen += chunk.toString()
      const end = seen.indexOf('\n')
      if (end < 0) return
      shell.stdout!.off('data', onData)
      shell.off('exit', onExit)
      const pid = Number(seen.slice(0, end))
      if (Number.isSafeInteger(pid) && pid > 0) resolve(pid)
      else reject(new Error(`the etcd watchdog printed ${JSON.stringify(seen)}, not a pid`))
    }
    shell.stdout!.on('data', onData)
    shell.once('exit', onExit)
  })
}

/** Resolves once every thread of `pid` is in state T (stopped), as /proc shows it. */
async function stopped(pid: number): Promise<void> {
  const deadline = Date.now() + STOP_TIMEOUT_MS
  const state = (task: string): string => {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8')
      return stat.charAt(stat.lastIndexOf(')') + 2)
    } catch {
      return 'T' // the thread has exited meanwhile
    }
  }
  while (!readdirSync(`/proc/${pid}/task`).every((task) => state(task) === 'T')) {
    if (Date.now() > deadline) throw new Error(`etcd ${pid} not stopped within ${STOP_TIMEOUT_MS} ms of SIGSTOP`)
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
}

/** Resolves once etcd reports itself healthy (it has a leader and serves requests) and the
 * member answering is the one started here, not whoever took its port since the probe. */
async function healthy(run: Run, url: string, name: string, log: string): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS
  for (;;) {
    let health: string | undefined
    try {
      health = ((await (await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) })).json()) as { health?: string }).health
    } catch {
      // not listening yet
    }
    if (isDone(run)) throw new Error(`etcd exited (${run.shell.exitCode}) while starting: ${tail(log)}`)
    if (health === 'true') {
      const listed = await fetch(`${url}/v3/cluster/member/list`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(1000) })
      const { members = [] } = (await listed.json()) as { members?: { name?: string }[] }
      if (!members.some((member) => member.name === name)) throw new Error(`${url} is another etcd (members: ${JSON.stringify(members)}), not ${name}`)
      return
    }
    if (Date.now() > deadline) throw new Error(`etcd at ${url} not healthy within ${STARTUP_TIMEOUT_MS} ms: ${tail(log)}`)
    await new Promise((resolve) => setTimeout(resolve, HEALTH_POLL_MS))
  }
}

function tail(log: string): string {
  try {
    return readFileSync(log, 'utf8').slice(-2000)
  } catch {
    return '(no log)'
  }
}
