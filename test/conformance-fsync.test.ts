// The official conformance suite against a server in the fsync durability class.
import { conformanceSuite } from './conformance.js'

conformanceSuite('fsync')
