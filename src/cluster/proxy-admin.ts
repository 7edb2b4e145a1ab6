// cluster/proxy-admin.ts — pointing HAProxy at a shard's new leader through its runtime
// API (`stats socket … level admin`): the backend's server for the shard gets the
// leader's address. The proxy's hash ring names shards, not machines, so a failover moves no
// path: only the shard's address changes. Whether the server is in the ring (ready) or out
// of it (maint) is `ringstream rebalance`'s to say, never a leader's.

import { connect } from 'node:net'

/** How long one runtime API exchange may take. */
const ADMIN_TIMEOUT_MS = 2000

/** Sends `commands` (one per line) to the runtime API at `address` (a unix socket path or
 * host:port) and resolves with its answer; rejects when it cannot be reached. */
export function runtimeApi(address: string, commands: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const hostPort = /^([^/]+):(\d+)$/.exec(address)
    const socket = hostPort === null ? connect({ path: address }) : connect({ host: hostPort[1]!, port: Number(hostPort[2]) })
    let answer = ''
    socket.setTimeout(ADMIN_TIMEOUT_MS, () => socket.destroy(new Error(`no answer within ${ADMIN_TIMEOUT_MS} ms`)))
    socket.on('connect', () => socket.end(`${commands.join(';')}\n`))
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('utf8')
    })
    socket.on('error', reject)
    socket.on('close', () => resolve(answer))
  })
}

/** Points `backend/server` at `url`'s host and port on every proxy. Errors per proxy are
 * returned, not thrown: one proxy down must not keep the others from being told. */
export async function pointProxies(admins: readonly string[], backend: string, server: string, url: string): Promise<string[]> {
  const { hostname, port, protocol } = new URL(url)
  const host = hostname.replace(/^\[|\]$/g, '')
  const portNumber = port === '' ? (protocol === 'https:' ? '443' : '80') : port
  const errors: string[] = []
  await Promise.all(
    admins.map(async (admin) => {
      try {
        const answer = await runtimeApi(admin, [`set server ${backend}/${server} addr ${host} port ${portNumber}`])
        // Success is an empty answer or "IP changed from …"; anything else names the problem.
        const problems = answer.split('\n').filter((line) => line.trim() !== '' && !/changed from|no need to change/i.test(line))
        if (problems.length > 0) errors.push(`${admin}: ${problems.join(' / ')}`)
      } catch (error) {
        errors.push(`${admin}: ${(error as Error).message}`)
      }
    }),
  )
  return errors
}
