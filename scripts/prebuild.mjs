#!/usr/bin/env node
// scripts/prebuild.mjs — makes this platform's prebuilt-binary package: builds the addon
// with node-gyp, names it as napi-rs expects (ringstream.<platform>.node) and lets the
// napi-rs CLI place it into npm/<platform>/. `npm run package:prebuilt` runs it; `npm pack npm/<platform>` then makes the
// package users install instead of compiling.

import { execFileSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { platformName } from './platform.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)

const platform = platformName()
const built = join(root, 'build', 'Release', 'ringstream.node')
if (!existsSync(built)) {
  const gyp = process.env.npm_config_node_gyp ?? require.resolve('node-gyp/bin/node-gyp.js')
  execFileSync(process.execPath, [gyp, 'rebuild'], { cwd: root, stdio: 'inherit' })
}
const artifacts = join(root, 'artifacts')
rmSync(artifacts, { recursive: true, force: true })
mkdirSync(artifacts)
copyFileSync(built, join(artifacts, `ringstream.${platform}.node`))
const napi = join(root, 'node_modules', '.bin', 'napi')
execFileSync(napi, ['artifacts', '--dir', 'artifacts', '--dist', 'npm'], { cwd: root, stdio: 'inherit' })
rmSync(artifacts, { recursive: true, force: true })
// napi-rs also drops a copy beside package.json for local loading; the loader never looks there.
rmSync(join(root, `ringstream.${platform}.node`), { force: true })
console.log(`prebuild: npm/${platform}/ringstream.${platform}.node`)
