// test/browser/layout.ts — what the browser test's page and the test share: which reader
// reads how, and the page's state as the test reads it (window.ringstreamPage).

export type Mode = 'sse' | 'long-poll'
export type Kind = 'json' | 'text'

/** One reader as the test reads it. */
export interface ReaderState {
  readonly index: number
  readonly path: string
  readonly mode: Mode
  readonly kind: Kind
  /** The offset it resumed from (-1 on a first load). */
  readonly resumedFrom: string
  offset: string
  /** Messages received in this page's life, with Date.now() on arrival. */
  readonly received: Array<{ message: string; at: number }>
  /** 'opening' until the first response, then 'live'; 'failed: …' on an error. */
  status: string
}

export interface PageState {
  readonly readers: ReaderState[]
  /** What the reader with a wrong token surfaced (e.g. "FetchError 401"), once it has. */
  wrongToken: string | undefined
  /** What the page's writer did: "3 appended, next offset …" or "failed: …". */
  written: string | undefined
  /** The rows StreamDB holds: key → value as JSON. */
  stateRows: Record<string, string>
}

export const READERS = 20
/** Reader i: SSE when i is even, long-poll when odd; JSON for i mod 4 < 2, text otherwise. */
export const modeOf = (i: number): Mode => (i % 2 === 0 ? 'sse' : 'long-poll')
export const kindOf = (i: number): Kind => (i % 4 < 2 ? 'json' : 'text')
