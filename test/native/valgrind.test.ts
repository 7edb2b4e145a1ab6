// test/native/valgrind.test.ts — the addon under valgrind memcheck (valgrind.mjs running
// exercise.cjs) must exit 0: no invalid access, no definite leak, every assert passing.
// Skipped when valgrind is not installed or this kernel/container refuses io_uring.

import { execFile, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { describe, expect, test } from 'vitest'

const here = (name: string): string => fileURLToPath(new URL(name, import.meta.url))
const addonPath = here('../../build/Release/ringstream.node')
const hasValgrind = spawnSync('valgrind', ['--version']).error === undefined

/** Why io_uring cannot be exercised here (setup refused), or undefined. */
function ioUringRefused(): string | undefined {
  if (!fs.existsSync(addonPath)) return undefined
  const addon = createRequire(import.meta.url)(addonPath) as { create(slots: number, cb: () => void): object; close(ring: object): void }
  try {
    addon.close(addon.create(1, () => {}))
    return undefined
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    return code === 'EPERM' || code === 'ENOSYS' ? code : undefined
  }
}

const refused = hasValgrind ? ioUringRefused() : undefined

describe.skipIf(!hasValgrind || refused !== undefined)('native addon under valgrind', () => {
  test('memcheck finds no errors and no definite leaks', async () => {
    expect(fs.existsSync(addonPath), `build the addon first (node-gyp rebuild): ${addonPath}`).toBe(true)
    const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = execFile(process.execPath, [here('valgrind.mjs'), addonPath], { maxBuffer: 16 << 20 }, (_error, stdout, stderr) =>
        resolve({ code: child.exitCode, output: stdout + stderr }),
      )
    })
    expect(code, output.slice(-6000)).toBe(0)
    expect(output).toContain('exercise: ok')
  }, 120_000)
})
