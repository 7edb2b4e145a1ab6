// The official conformance suite against a server in the buffered durability class on node:fs.
import { conformanceSuite } from './conformance.js'

conformanceSuite('buffered', 'fs')
