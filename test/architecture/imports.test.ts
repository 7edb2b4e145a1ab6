// The shape of src/ as its import graph (read by dependency-cruiser, type-only imports
// included): no two files import each other, directly or around a longer circle, and no
// import runs up the layers below. docs/code-map.md describes the same layers.

import { describe, expect, it } from 'vitest'
import { cruise, type ICruiseResult } from 'dependency-cruiser'
import extractTsConfig from 'dependency-cruiser/config-utl/extract-ts-config'

/** The layers of src/, lowest first: a file may import its own unit and any unit of a lower
 * layer, never a higher one nor another unit of its own layer. A unit is a top-level folder
 * or a top-level file (without .ts). */
const LAYERS: readonly (readonly string[])[] = [
  ['util', 'protocol'],
  ['io'],
  ['storage'],
  ['config'],
  ['streams', 'auth', 'metrics'],
  ['subscriptions'],
  ['http'],
  ['cluster'],
  ['server'],
  ['cli', 'index'],
]

/** Inside storage/: the contract (with the position index every log keeps, and where files
 * live) at the bottom, then the three rooms, which never import each other, then the two
 * storages that put them together, and opening one. */
const STORAGE_LAYERS: readonly (readonly string[])[] = [
  ['boundary-index', 'paths', 'disk-budget'],
  ['types'],
  ['wal', 'segments', 'registry'],
  ['memory'],
  ['durable'],
  ['open', 'data-dir-lock'],
]

interface Edge {
  readonly from: string
  readonly to: string
}

async function importGraph(): Promise<{ edges: Edge[]; result: ICruiseResult }> {
  const reported = await cruise(
    ['src'],
    {
      tsPreCompilationDeps: true,
      doNotFollow: { path: 'node_modules' },
      exclude: { path: '\\.test\\.ts$' },
      validate: true,
      ruleSet: {
        forbidden: [
          { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
          // A local import the cruiser cannot resolve would leave an edge out of the checks.
          { name: 'local-resolves', severity: 'error', from: {}, to: { couldNotResolve: true, path: '^[.]' } },
        ],
      },
    },
    { extensions: ['.ts', '.js'] },
    { tsConfig: extractTsConfig('./tsconfig.json') },
  )
  const result = reported.output as ICruiseResult
  const edges: Edge[] = []
  for (const module of result.modules) {
    if (!module.source.startsWith('src/')) continue
    for (const dependency of module.dependencies) if (dependency.resolved.startsWith('src/')) edges.push({ from: module.source, to: dependency.resolved })
  }
  return { edges, result }
}

/** [unit, its layer] of a src/ file within `layers`, units named by `unitOf`. */
function place(file: string, layers: readonly (readonly string[])[], unitOf: (file: string) => string): [string, number] {
  const unit = unitOf(file)
  const layer = layers.findIndex((units) => units.includes(unit))
  if (layer < 0) throw new Error(`${file}: its unit "${unit}" is in no layer; add it to the table in this test and to docs/code-map.md`)
  return [unit, layer]
}

const topUnit = (file: string): string => file.slice('src/'.length).split('/')[0]!.replace(/\.ts$/, '')
const storageUnit = (file: string): string => file.slice('src/storage/'.length).split('/')[0]!.replace(/\.ts$/, '')

/** The edges that run up `layers` or across units of one layer, as "from -> to" lines. */
function wrongWay(edges: readonly Edge[], layers: readonly (readonly string[])[], unitOf: (file: string) => string): string[] {
  const wrong: string[] = []
  for (const { from, to } of edges) {
    const [fromUnit, fromLayer] = place(from, layers, unitOf)
    const [toUnit, toLayer] = place(to, layers, unitOf)
    if (fromUnit !== toUnit && toLayer >= fromLayer) wrong.push(`${from} -> ${to}`)
  }
  return wrong
}

describe('the import graph of src/', async () => {
  const { edges, result } = await importGraph()

  it('covers the whole source tree', () => {
    // A wrong pattern or resolver setting would check an empty graph and pass.
    expect(result.modules.filter((module) => module.source.startsWith('src/')).length).toBeGreaterThan(60)
    expect(edges.length).toBeGreaterThan(200)
  })

  it('has no circles and resolves every local import', () => {
    const violations = result.summary.violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}${v.cycle === undefined ? '' : ` (circle: ${v.cycle.map((step) => step.name).join(' -> ')})`}`)
    expect(violations).toEqual([])
  })

  it('runs one way between layers: util and protocol < io < storage < config < streams, auth, metrics < subscriptions < http < cluster < server < cli', () => {
    expect(wrongWay(edges, LAYERS, topUnit)).toEqual([])
  })

  it('runs one way inside storage/: the contract < wal/, segments/, registry/ (independent) < memory < durable < open', () => {
    const inside = edges.filter(({ from, to }) => from.startsWith('src/storage/') && to.startsWith('src/storage/'))
    expect(inside.length).toBeGreaterThan(20)
    expect(wrongWay(inside, STORAGE_LAYERS, storageUnit)).toEqual([])
  })
})
