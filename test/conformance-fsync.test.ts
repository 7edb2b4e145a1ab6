// The official conformance suite against a server in the fsync durability class on io_uring.
import { conformanceSuite } from './conformance.js'

conformanceSuite('fsync', 'uring')
