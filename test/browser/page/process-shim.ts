// test/browser/page/process-shim.ts — what a page must add before the official client's
// IdempotentProducer works in a browser: its flush() waits on fastq's drained(), which calls
// process.nextTick (fastq 1.20.3, the newest published), and a browser has no `process`
// ("ReferenceError: process is not defined"). README "In the browser" shows the same lines.

const scope = globalThis as { process?: { env: Record<string, string>; nextTick(run: (...args: unknown[]) => void, ...args: unknown[]): void } }
scope.process ??= { env: {}, nextTick: (run, ...args) => queueMicrotask(() => run(...args)) }
