// index.ts — public library API.

export { createServer, type RingstreamServer } from './server.js'
export { DEFAULTS, type ServerConfig } from './config.js'
