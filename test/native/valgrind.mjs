#!/usr/bin/env node
// test/native/valgrind.mjs — runs exercise.cjs against the addon under valgrind memcheck and
// exits with its status: non-zero on any memory error, a definite leak or a failed assert.
// Usage: node test/native/valgrind.mjs [path/to/ringstream.node]

import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const here = (name) => fileURLToPath(new URL(name, import.meta.url))
const addon = process.argv[2] ?? here('../../build/Release/ringstream.node')

const result = spawnSync(
  'valgrind',
  [
    '--tool=memcheck',
    '--error-exitcode=1',
    '--errors-for-leak-kinds=definite',
    '--leak-check=full',
    `--suppressions=${here('node.supp')}`,
    process.execPath,
    '--expose-gc',
    here('exercise.cjs'),
    addon,
  ],
  { stdio: 'inherit' },
)
if (result.error) {
  console.error(`valgrind.mjs: cannot run valgrind: ${result.error.message}`)
  process.exit(2)
}
process.exit(result.status ?? 1)
