import { describe, expect, it } from 'vitest'
import { compileGlob, patternProblem } from './glob.js'

describe('subscription globs', () => {
  const cases: Array<[string, string, boolean]> = [
    ['events/*', 'events/a', true],
    ['events/*', 'events/a/b', false],
    ['events/*', 'events', false],
    ['events/*', 'eventsx/a', false],
    ['events/**', 'events', true],
    ['events/**', 'events/a/b/c', true],
    ['events/**', 'eventsx/a', false],
    ['**', 'a/b', true],
    ['**/end', 'end', true],
    ['**/end', 'a/b/end', true],
    ['**/end', 'a/bend', false],
    ['a/**/b', 'a/b', true],
    ['a/**/b', 'a/x/y/b', true],
    ['a/**/b', 'a/xb', false],
    ['user-*/log', 'user-7/log', true],
    ['user-*/log', 'user-7/x/log', false],
    ['a.b/*', 'axb/c', false],
    ['a+(b)/*', 'a+(b)/c', true],
  ]
  for (const [pattern, path, expected] of cases) {
    it(`${pattern} ${expected ? 'matches' : 'does not match'} ${path}`, () => {
      expect(compileGlob(pattern).matches(path)).toBe(expected)
    })
  }

  it('knows a literal first segment, and only then', () => {
    expect(compileGlob('events/*').firstSegment).toBe('events')
    expect(compileGlob('ev*/x').firstSegment).toBeUndefined()
    expect(compileGlob('**').firstSegment).toBeUndefined()
  })

  it('refuses patterns that cannot match a stream path', () => {
    expect(patternProblem('')).toMatch(/empty/)
    expect(patternProblem('/events/*')).toMatch(/leading/)
    expect(patternProblem('events//a')).toMatch(/empty segment/)
    expect(patternProblem('events/a**')).toMatch(/whole segment/)
    expect(patternProblem('events/**')).toBeUndefined()
  })
})
