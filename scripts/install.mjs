#!/usr/bin/env node
// scripts/install.mjs — npm's install step. Builds the io_uring addon from source on Linux
// when no prebuilt binary package matches this platform; never fails the install: without
// a compiler (or off Linux) ringstream runs on node:fs, and says so in its startup line.

import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { platformName } from './platform.mjs'

const require = createRequire(import.meta.url)

function note(message) {
  console.log(`ringstream install: ${message}`)
}

function prebuiltPresent() {
  const name = `ringstream-${platformName()}`
  try {
    require.resolve(name)
    return name
  } catch {
    return undefined
  }
}

function main() {
  if (process.platform !== 'linux') return note(`io_uring is Linux-only; this ${process.platform} install uses node:fs`)
  if (process.env.RINGSTREAM_BUILD_FROM_SOURCE === '0') return note('building from source disabled (RINGSTREAM_BUILD_FROM_SOURCE=0)')
  const prebuilt = prebuiltPresent()
  if (prebuilt !== undefined) return note(`using the prebuilt addon from ${prebuilt}`)
  // npm hands its bundled node-gyp to scripts; fall back to one on PATH.
  const gyp = process.env.npm_config_node_gyp
  const [command, args] = gyp ? [process.execPath, [gyp, 'rebuild']] : ['node-gyp', ['rebuild']]
  const built = spawnSync(command, args, { stdio: 'inherit' })
  if (built.status === 0) return note('built the io_uring addon (build/Release/ringstream.node)')
  note('could not build the io_uring addon (no compiler?); ringstream will run on node:fs')
}

main()
