// subscriptions/glob.ts — subscription patterns over stream-root-relative paths
// (PROTOCOL §6.2): segments split on '/', a `*` segment matches exactly one segment, a `**`
// segment matches zero or more, and `*` inside a segment matches any characters but '/'
// (`events/user-*`). Compiled once per subscription; matching is linear in the path.

export interface Glob {
  readonly pattern: string
  /** The pattern's first segment when it has no wildcard: only paths starting with it can
   * match (lets an append skip subscriptions of other prefixes without matching). */
  readonly firstSegment: string | undefined
  matches(path: string): boolean
}

export function compileGlob(pattern: string): Glob {
  const segments = pattern.split('/')
  let source = ''
  segments.forEach((segment, i) => {
    const last = i === segments.length - 1
    if (segment !== '**') source += segment.split('*').map(escapeRegExp).join('[^/]*') + (last ? '' : '/')
    else if (!last) source += '(?:[^/]+/)*'
    // A final `**` also matches zero segments: `a/**` matches `a` itself.
    else source = i === 0 ? '.+' : `${source.slice(0, -1)}(?:/.+)?`
  })
  const regexp = new RegExp(`^${source}$`)
  const first = segments[0]!
  return { pattern, firstSegment: first.includes('*') ? undefined : first, matches: (path) => regexp.test(path) }
}

/** Why a pattern cannot be used, or undefined when it can. */
export function patternProblem(pattern: string): string | undefined {
  if (pattern.length === 0) return 'pattern must not be empty'
  if (pattern.startsWith('/') || pattern.endsWith('/')) return 'pattern is stream-root-relative: no leading or trailing "/"'
  for (const segment of pattern.split('/')) {
    if (segment === '') return 'pattern has an empty segment'
    if (segment.includes('**') && segment !== '**') return '"**" must be a whole segment'
  }
  return undefined
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
