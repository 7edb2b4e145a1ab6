// test/subscriptions/children.ts — the subscription tests' real helper processes (webhook
// receivers, pull-wake workers) and reading the JSON lines they print.

import type { ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'

export const RECEIVER = fileURLToPath(new URL('./webhook-receiver.mjs', import.meta.url))
export const WORKER = fileURLToPath(new URL('./pull-worker.mjs', import.meta.url))

/** Every JSON line a child prints, and a way to wait for one. */
export interface Lines {
  readonly seen: Array<Record<string, any>>
  next(predicate: (line: Record<string, any>) => boolean, timeoutMs?: number): Promise<Record<string, any>>
}

export function jsonLines(child: ChildProcess): Lines {
  const seen: Array<Record<string, any>> = []
  const waiting: Array<() => void> = []
  let partial = ''
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  child.stdout!.on('data', (chunk: Buffer) => {
    partial += chunk.toString()
    const lines = partial.split('\n')
    partial = lines.pop()!
    for (const line of lines) if (line.trim() !== '') seen.push(JSON.parse(line) as Record<string, any>)
    for (const wake of waiting.splice(0)) wake()
  })
  return {
    seen,
    async next(predicate, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const found = seen.find(predicate)
        if (found !== undefined) return found
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no matching line from the child (exit ${child.exitCode}); saw ${JSON.stringify(seen)}; stderr: ${stderr}`)
        await new Promise<void>((resolve) => {
          waiting.push(resolve)
          setTimeout(resolve, 100)
        })
      }
    },
  }
}

/** A port nothing listens on (bound, then released). */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Polls until `check` returns a value (not undefined), or fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined>, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
