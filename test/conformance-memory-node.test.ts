// The official conformance suite against a server in the memory class on the node:http
// backend (the fallback where uWebSockets.js does not load).
import { conformanceSuite } from './conformance.js'

conformanceSuite('memory', 'fs', 'node')
