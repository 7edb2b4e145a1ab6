#!/usr/bin/env node
// The ringstream command; the implementation is compiled from src/cli.ts into dist/.
import { main } from '../dist/cli.js'

main().catch((error) => {
  console.error(`ringstream: ${error instanceof Error ? error.message : String(error)}`)
  process.exit(1)
})
