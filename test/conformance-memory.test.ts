// The official conformance suite against a server in the memory durability class.
import { conformanceSuite } from './conformance.js'

conformanceSuite('memory')
