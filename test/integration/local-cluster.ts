// test/integration/local-cluster.ts — deploy/local-cluster.sh as the cluster tests use it: a
// real HAProxy in front of real nodes (replicas 1), started before a describe block's tests
// and stopped after them, its output kept (CLUSTER_LOG=FILE writes it out), its ports below
// the ephemeral range (nodes are killed and started again on theirs).

import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll } from 'vitest'
import { freePortsBelowEphemeral } from '../helpers-ports.js'
import { eventually } from '../subscriptions/children.js'

const SCRIPT = fileURLToPath(new URL('../../deploy/local-cluster.sh', import.meta.url))

/** Why the cluster tests cannot run here, or undefined; with RINGSTREAM_REQUIRE_HAPROXY=1
 * (CI) a missing HAProxy fails instead. */
export const haproxyMissing: string | undefined = (() => {
  try {
    execFileSync('haproxy', ['-v'], { stdio: 'ignore' })
    return undefined
  } catch {
    if (process.env.RINGSTREAM_REQUIRE_HAPROXY === '1') throw new Error('RINGSTREAM_REQUIRE_HAPROXY=1 but haproxy is not installed')
    return 'haproxy is not installed (Debian: apt-get install haproxy)'
  }
})()

export interface LocalCluster {
  readonly dataDir: string
  /** The proxy's port; node i listens on port + i. */
  port: number
  /** What the script, the nodes and HAProxy printed so far. */
  log: string
  proxy(): string
  nodeUrl(i: number): string
  /** The proxy's HTTPS (HTTP/2) address, started with { tls: true }. */
  tlsUrl(): string
}

/** Starts `deploy/local-cluster.sh --nodes N [scriptArgs] -- [nodeArgs]` before the block's
 * tests; with `tls`, the proxy serves HTTPS and HTTP/2 on the port below its own (--tls). */
export function useLocalCluster(nodes: number, scriptArgs: readonly string[], nodeArgs: readonly string[], { tls = false } = {}): LocalCluster {
  let script: ChildProcess | undefined
  const cluster: LocalCluster = {
    dataDir: mkdtempSync(join(tmpdir(), 'ringstream-cluster-')),
    port: 0,
    log: '',
    proxy: () => `http://127.0.0.1:${cluster.port}`,
    nodeUrl: (i) => `http://127.0.0.1:${cluster.port + i}`,
    tlsUrl: () => `https://localhost:${cluster.port - 1}`,
  }
  beforeAll(async () => {
    cluster.port = tls ? (await freePortsBelowEphemeral(nodes + 1)) + 1 : await freePortsBelowEphemeral(nodes)
    const args = ['--nodes', String(nodes), ...scriptArgs, ...(tls ? ['--tls'] : []), '--port', String(cluster.port), '--data-dir', cluster.dataDir, '--', ...nodeArgs]
    script = spawn(SCRIPT, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    script.stdout!.on('data', (chunk: Buffer) => (cluster.log += chunk.toString()))
    script.stderr!.on('data', (chunk: Buffer) => (cluster.log += chunk.toString()))
    await eventually(async () => (cluster.log.includes('cluster ready on') ? true : undefined), 'the cluster to start', 60_000).catch((error: Error) => {
      throw new Error(`${error.message}; what it printed:\n${cluster.log}`)
    })
  }, 90_000)
  afterAll(async () => {
    if (process.env.CLUSTER_LOG !== undefined) writeFileSync(process.env.CLUSTER_LOG, cluster.log)
    if (script !== undefined && script.exitCode === null) {
      const exited = once(script, 'exit')
      script.kill('SIGTERM')
      await exited
    }
    rmSync(cluster.dataDir, { recursive: true, force: true })
  }, 60_000)
  return cluster
}
