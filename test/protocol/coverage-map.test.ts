// Keeps docs/protocol-coverage.md (the PROTOCOL.md requirement map) honest. Every test its
// rows name must still exist: a `conformance: <title>` must occur, quoted, in the JavaScript
// of @durable-streams/server-conformance-tests/dist; a `<path>: <title>` must name a file of
// this repository whose source holds the title, quoted. It also checks that the map has at
// least 80 rows, that row ids are unique, that every row has five cells, a level and test
// entries of the allowed forms, and that the summary table's counts match the rows.

import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, test } from 'vitest'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const MAP = join(ROOT, 'docs', 'protocol-coverage.md')
const CONFORMANCE_DIST = join(ROOT, 'node_modules', '@durable-streams', 'server-conformance-tests', 'dist')

const ROW_ID = /^\d+(\.\d+)*-\d+$/
const LEVELS = new Set(['MUST', 'SHOULD', 'MAY'])
const CONFORMANCE_ENTRY = /^conformance: (.+)$/
const FILE_ENTRY = /^((?:test|src)\/[^\s:]+\.test\.ts): (.+)$/
const UNTESTED_ENTRY = /^untested \(.+\)/
const DIFFERS_ENTRY = /^differs: .+/
/** Untested reasons that are not the server's to meet. */
const NOT_SERVERS = /\((client|receiver|intermediary|application) requirement\)/

type Status = 'tested by conformance' | 'tested by ringstream tests' | 'differs' | 'untested: gap' | 'untested: not a server requirement' | 'untested: other'
const STATUSES: readonly Status[] = ['tested by conformance', 'tested by ringstream tests', 'differs', 'untested: gap', 'untested: not a server requirement', 'untested: other']

interface Row {
  readonly line: number
  readonly id: string
  readonly level: string
  readonly entries: readonly string[]
  readonly cells: number
}

function tableCells(line: string): string[] {
  return line.slice(1, line.endsWith('|') ? -1 : undefined).split('|').map((cell) => cell.trim())
}

/** The requirement rows: table lines whose first cell is a row id. */
function parseRows(text: string): Row[] {
  const rows: Row[] = []
  text.split('\n').forEach((line, index) => {
    if (!line.startsWith('|')) return
    const cells = tableCells(line)
    if (!ROW_ID.test(cells[0]!)) return
    rows.push({ line: index + 1, id: cells[0]!, level: cells[2] ?? '', entries: (cells[4] ?? '').split('<br>').map((entry) => entry.trim()), cells: cells.length })
  })
  return rows
}

function statusOf(row: Row): Status {
  const { entries } = row
  if (entries.some((entry) => DIFFERS_ENTRY.test(entry))) return 'differs'
  if (entries.some((entry) => CONFORMANCE_ENTRY.test(entry))) return 'tested by conformance'
  if (entries.some((entry) => FILE_ENTRY.test(entry))) return 'tested by ringstream tests'
  if (entries.some((entry) => UNTESTED_ENTRY.test(entry) && entry.includes('(gap)'))) return 'untested: gap'
  if (entries.some((entry) => NOT_SERVERS.test(entry))) return 'untested: not a server requirement'
  return 'untested: other'
}

/** A test title as it stands in source: between matching quotes or backticks. */
function holdsTitle(source: string, title: string): boolean {
  return ["'", '"', '`'].some((quote) => source.includes(`${quote}${title}${quote}`))
}

const text = readFileSync(MAP, 'utf8')
const rows = parseRows(text)

describe('docs/protocol-coverage.md', () => {
  test('has at least 80 rows with unique ids', () => {
    expect(rows.length).toBeGreaterThanOrEqual(80)
    const seen = new Set<string>()
    const duplicates: string[] = []
    for (const row of rows) {
      if (seen.has(row.id)) duplicates.push(`${row.id} (line ${row.line})`)
      seen.add(row.id)
    }
    expect(duplicates, 'duplicate row ids').toEqual([])
  })

  test('every row has five cells, a level and test entries of the allowed forms', () => {
    const problems: string[] = []
    for (const row of rows) {
      if (row.cells !== 5) problems.push(`${row.id} (line ${row.line}): ${row.cells} cells (a '|' inside a cell?)`)
      if (!LEVELS.has(row.level)) problems.push(`${row.id} (line ${row.line}): level ${JSON.stringify(row.level)}`)
      for (const entry of row.entries) {
        const known = [CONFORMANCE_ENTRY, FILE_ENTRY, UNTESTED_ENTRY, DIFFERS_ENTRY].some((form) => form.test(entry))
        if (!known) problems.push(`${row.id} (line ${row.line}): unknown test entry ${JSON.stringify(entry)}`)
      }
    }
    expect(problems).toEqual([])
  })

  test('every conformance test it names exists in the conformance package', () => {
    const dist = readdirSync(CONFORMANCE_DIST)
      .filter((name) => /\.(c|m)?js$/.test(name))
      .map((name) => readFileSync(join(CONFORMANCE_DIST, name), 'utf8'))
      .join('\n')
    const missing: string[] = []
    for (const row of rows) {
      for (const entry of row.entries) {
        const title = CONFORMANCE_ENTRY.exec(entry)?.[1]
        if (title !== undefined && !holdsTitle(dist, title)) missing.push(`${row.id}: conformance: ${title}`)
      }
    }
    expect(missing, 'conformance tests named in the map but not found in its dist/').toEqual([])
  })

  test('every ringstream test it names exists in the file it names', () => {
    const sources = new Map<string, string | undefined>()
    const missing: string[] = []
    for (const row of rows) {
      for (const entry of row.entries) {
        const match = FILE_ENTRY.exec(entry)
        if (match === null) continue
        const path = match[1]!
        const title = match[2]!
        if (!sources.has(path)) sources.set(path, existsSync(join(ROOT, path)) ? readFileSync(join(ROOT, path), 'utf8') : undefined)
        const source = sources.get(path)
        if (source === undefined) missing.push(`${row.id}: ${path} does not exist`)
        else if (!holdsTitle(source, title)) missing.push(`${row.id}: ${path}: ${title}`)
      }
    }
    expect(missing, 'tests named in the map but not found').toEqual([])
  })

  test('the summary table counts the rows by status and level', () => {
    const counted = new Map<string, number[]>(STATUSES.map((status) => [status, [0, 0, 0, 0]]))
    const total = [0, 0, 0, 0]
    for (const row of rows) {
      const column = ['MUST', 'SHOULD', 'MAY'].indexOf(row.level)
      for (const counts of [counted.get(statusOf(row))!, total]) {
        counts[column]!++
        counts[3]!++
      }
    }
    counted.set('total', total)
    const stated = new Map<string, number[]>()
    for (const line of text.split('\n')) {
      if (!line.startsWith('|')) continue
      const [label, ...numbers] = tableCells(line)
      if (counted.has(label!)) stated.set(label!, numbers.map(Number))
    }
    expect(Object.fromEntries(stated)).toEqual(Object.fromEntries(counted))
    const partial = rows.filter((row) => statusOf(row).startsWith('tested') && row.entries.some((entry) => UNTESTED_ENTRY.test(entry) && entry.includes('(gap)'))).length
    expect(text).toContain(`(partial coverage): ${partial}.`)
  })
})
