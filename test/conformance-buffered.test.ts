// The official conformance suite against a server in the buffered durability class.
import { conformanceSuite } from './conformance.js'

conformanceSuite('buffered')
