// The SIGKILL crash test (crash-suite.ts) on the io_uring backend.
import { describe } from 'vitest'
import { uringUnavailable } from '../uring-available.js'
import { crashSuite } from './crash-suite.js'

if (uringUnavailable === undefined) crashSuite('uring')
else describe.skip(`crash recovery with SIGKILL (--io uring): ${uringUnavailable}`, () => {})
