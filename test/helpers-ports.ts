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
