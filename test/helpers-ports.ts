// test/helpers-ports.ts — picking a free TCP port for a child process the test will kill and
// start again on the same port.

import { createServer } from 'node:net'

/** A port free on 127.0.0.1, below the ephemeral range (32768+ on Linux): after a kill, an
 * outgoing connection of this process could otherwise be given the dead server's port as
 * its own and hold it. */
export async function freePortBelowEphemeral(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000)
    const free = await new Promise<boolean>((resolve) => {
      const probe = createServer()
      probe.once('error', () => resolve(false))
      probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)))
    })
    if (free) return port
  }
}

/** A port with the `count` ports after it free too, all below the ephemeral range: a proxy
 * on the first and a node on each of the others (deploy/local-cluster.sh's layout). */
export async function freePortsBelowEphemeral(count: number): Promise<number> {
  for (;;) {
    const port = await freePortBelowEphemeral()
    if (port + count >= 32_768) continue
    const others = Array.from({ length: count }, (_, i) => port + 1 + i)
    if ((await Promise.all(others.map(portFree))).every(Boolean)) return port
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const probe = createServer()
    probe.once('error', () => resolve(false))
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)))
  })
}
