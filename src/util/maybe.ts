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
