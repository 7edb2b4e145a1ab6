// The SIGKILL crash test (crash-suite.ts) on the node:fs backend.
import { crashSuite } from './crash-suite.js'

crashSuite('fs')
