// The SIGKILL crash test (crash-suite.ts) on the io_uring backend (Linux only).
import { describe } from 'vitest'
import { crashSuite } from './crash-suite.js'

if (process.platform === 'linux') crashSuite('uring')
else describe.skip('crash recovery with SIGKILL (--io uring): io_uring is Linux-only', () => {})
