// test/process.ts — running the real `ringstream` command (bin/ringstream.js over dist/) as a
// child process: spawn it, collect its output, wait for its startup line.

import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { afterEach } from 'vitest'

export const BIN = fileURLToPath(new URL('../bin/ringstream.js', import.meta.url))

export interface Exited {
  code: number | null
  stdout: string
  stderr: string
}

/** Spawns children that are SIGKILLed after each test if still running. */
export function useChildren(): (command: string[], env?: NodeJS.ProcessEnv) => ChildProcess {
  const children: ChildProcess[] = []
  afterEach(() => {
    for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL')
  })
  return (command, env = {}) => {
    const child = spawn(command[0]!, command.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    children.push(child)
    return child
  }
}

/** The command line that runs ringstream with these arguments. */
export function ringstream(args: string[]): string[] {
  return [process.execPath, BIN, ...args]
}

export async function output(child: ChildProcess): Promise<Exited> {
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const [code] = (await once(child, 'exit')) as [number | null]
  return { code, stdout, stderr }
}

export interface Startup {
  url: string
  line: string
}

/** Resolves with the URL and the whole startup line once the server prints it. */
export async function startup(child: ChildProcess): Promise<Startup> {
  let seen = ''
  let errors = ''
  child.stderr?.on('data', (chunk: Buffer) => (errors += chunk.toString()))
  for await (const chunk of child.stdout!) {
    seen += (chunk as Buffer).toString()
    const match = /listening on (https?:\/\/[^\s/]+)\/v1\/stream\/.*\n/.exec(seen)
    if (match) return { url: match[1]!, line: match[0].trim() }
  }
  throw new Error(`server exited before its startup line: ${seen}${errors === '' ? '' : ` (stderr: ${errors.trim()})`}`)
}
