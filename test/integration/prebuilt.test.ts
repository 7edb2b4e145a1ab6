// Integration: the prebuilt path as a user meets it. The main package and this platform's
// binary package (npm/<platform>, laid out by the napi-rs CLI) are packed and installed into
// an empty project on a machine where compiling cannot work; the server must start on
// io_uring from the prebuilt binary. Without the binary package the same install still
// succeeds and the server runs on node:fs.

import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { platformName } from '../../src/io/native-loader.js'
import { startup, useChildren } from '../process.js'
import { uringUnavailable } from '../uring-available.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const PLATFORM = platformName()
const spawnChild = useChildren()
let work = ''
let mainTarball = ''
let platformTarball = ''

/** Anything that tries to compile fails loudly instead of quietly building from source. */
const NO_COMPILER = { CC: '/bin/false', CXX: '/bin/false', npm_config_node_gyp: '/bin/false' }

function npm(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): string {
  return execFileSync('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline'], {
    cwd,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  })
}

function pack(dir: string): string {
  const before = new Set(readdirSync(work))
  npm(['pack', dir, '--ignore-scripts', '--pack-destination', work], ROOT)
  const made = readdirSync(work).filter((name) => name.endsWith('.tgz') && !before.has(name))
  expect(made).toHaveLength(1)
  return join(work, made[0]!)
}

/** An empty project with the given tarballs installed; returns its directory. */
function project(name: string, tarballs: string[]): { dir: string; log: string } {
  const dir = join(work, name)
  mkdirSync(dir)
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true }))
  const log = npm(['install', ...tarballs], dir, NO_COMPILER)
  return { dir, log }
}

describe.runIf(PLATFORM === 'linux-x64-gnu' && uringUnavailable === undefined)('prebuilt binary package', () => {
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'ringstream-pack-'))
    execFileSync(process.execPath, [join(ROOT, 'scripts', 'prebuild.mjs')], { cwd: ROOT, stdio: 'pipe' })
    mainTarball = pack('.')
    platformTarball = pack(`./npm/${PLATFORM}`)
  }, 120_000)

  afterAll(() => rmSync(work, { recursive: true, force: true }))

  test('installs without compiling and starts on io_uring from the prebuilt binary', async () => {
    const { dir } = project('with-prebuilt', [mainTarball, platformTarball])
    expect(existsSync(join(dir, 'node_modules', 'ringstream', 'build'))).toBe(false)
    expect(existsSync(join(dir, 'node_modules', `ringstream-${PLATFORM}`, `ringstream.${PLATFORM}.node`))).toBe(true)
    const child = spawnChild([join(dir, 'node_modules', '.bin', 'ringstream'), '--port', '0', '--data-dir', join(dir, 'data')])
    const { url, line } = await startup(child)
    expect(line).toContain(`io=uring (prebuilt ringstream-${PLATFORM})`)
    expect((await fetch(`${url}/v1/stream/p`, { method: 'PUT' })).status).toBe(201)
  }, 180_000)

  test('without the binary package and without a compiler it installs cleanly and runs on node:fs', async () => {
    const { dir } = project('without-prebuilt', [mainTarball])
    expect(existsSync(join(dir, 'node_modules', 'ringstream', 'build', 'Release', 'ringstream.node'))).toBe(false)
    const child = spawnChild([join(dir, 'node_modules', '.bin', 'ringstream'), '--port', '0', '--data-dir', join(dir, 'data')])
    const { url, line } = await startup(child)
    expect(line).toContain(`io=node-fs (io_uring unavailable: no ringstream-${PLATFORM} package; no local build)`)
    expect((await fetch(`${url}/v1/stream/p`, { method: 'PUT' })).status).toBe(201)
  }, 180_000)
})
