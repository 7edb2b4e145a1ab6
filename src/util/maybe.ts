// util/maybe.ts — values that are ready now or later. (No export may be named `then`:
// a module namespace with a then() is a thenable and breaks `await import()`.) Memory storage answers synchronously;
// disk storage answers with promises. Keeping the sync path promise-free keeps it fast.

export type MaybePromise<T> = T | Promise<T>

export function isPromise<T>(value: MaybePromise<T>): value is Promise<T> {
  return value instanceof Promise
}

/** Applies `fn` now if `value` is ready, otherwise when it resolves. */
export function andThen<T, R>(value: MaybePromise<T>, fn: (ready: T) => MaybePromise<R>): MaybePromise<R> {
  return isPromise(value) ? value.then(fn) : fn(value)
}

/** Like Promise.all, but synchronous when every element is ready. */
export function all<T>(values: MaybePromise<T>[]): MaybePromise<T[]> {
  return values.some(isPromise) ? Promise.all(values) : (values as T[])
}

/** A callback's outcome: an error, or the value. */
export type Done<R> = (error: unknown, value: R | undefined) => void

/** Runs a callback-taking operation as a MaybePromise: its value when `start` called back at
 * once, else a promise of it (made only then). Throws what `start` throws. */
export function promised<R>(start: (done: Done<R>) => void): MaybePromise<R> {
  let settle: Done<R> | undefined
  let early: { error: unknown; value: R | undefined } | undefined
  start((error, value) => (settle === undefined ? (early = { error, value }) : settle(error, value)))
  if (early !== undefined) {
    if (early.error !== undefined) throw early.error
    return early.value as R
  }
  return new Promise<R>((resolve, reject) => {
    settle = (error, value) => (error === undefined ? resolve(value as R) : reject(error))
  })
}
