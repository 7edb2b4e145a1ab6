// test/native/valgrind.test.ts — the addon under valgrind memcheck (valgrind.mjs running
// exercise.cjs) must exit 0: no invalid access, no definite leak, every assert passing.
// Skipped when valgrind is not installed or io_uring cannot run here (test/uring-available.ts;
// CI requires it).

import { execFile, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, test } from 'vitest'
import { uringUnavailable } from '../uring-available.js'

const here = (name: string): string => fileURLToPath(new URL(name, import.meta.url))
const addonPath = here('../../build/Release/ringstream.node')
const hasValgrind = spawnSync('valgrind', ['--version']).error === undefined

describe.skipIf(!hasValgrind || uringUnavailable !== undefined)('native addon under valgrind', () => {
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
