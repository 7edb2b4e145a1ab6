// The official conformance suite against a server in the fsync durability class on node:fs.
import { conformanceSuite } from './conformance.js'

conformanceSuite('fsync', 'fs')
