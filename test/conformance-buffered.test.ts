// The official conformance suite against a server in the buffered durability class on io_uring.
import { conformanceSuite } from './conformance.js'

conformanceSuite('buffered', 'uring')
