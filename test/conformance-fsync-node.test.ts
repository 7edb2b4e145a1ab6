// The official conformance suite against a server in the fsync class, --io fs, on the
// node:http backend (the fallback where uWebSockets.js does not load).
import { conformanceSuite } from './conformance.js'

conformanceSuite('fsync', 'fs', 'node')
