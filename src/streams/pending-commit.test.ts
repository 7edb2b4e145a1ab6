// Unit tests for streams/pending-commit.ts: waiters hear once, before and after settling;
// commitPromise follows Storage.commit's callback contract.

import { describe, expect, test } from 'vitest'
import type { Change, Storage } from '../storage/types.js'
import { PendingCommit, commitPromise } from './pending-commit.js'

const change: Change = { kind: 'delete', streamId: 1 }

function storage(commit: Storage['commit']): Storage {
  return { kind: 'test', createLog: () => { throw new Error('unused') }, commit, close: async () => {} }
}

describe('PendingCommit', () => {
  test('waiters added before and after it settles each hear its outcome once', async () => {
    const pending = new PendingCommit()
    const heard: unknown[] = []
    pending.wait((error) => heard.push(error ?? 'ok'))
    const promise = pending.promise()
    const failure = new Error('disk')
    pending.settle(failure)
    pending.wait((error) => heard.push(error))
    expect(heard).toEqual([failure, failure])
    await expect(promise).rejects.toBe(failure)
  })
})

describe('commitPromise', () => {
  test('undefined when storage is done at once; a promise of the later callback otherwise', async () => {
    expect(commitPromise(storage(() => false), change, 'memory', 0)).toBeUndefined()
    let later: ((error: unknown) => void) | undefined
    const waiting = commitPromise(storage((_c, _d, _t, done) => ((later = done), true)), change, 'fsync', 0)
    expect(waiting).toBeInstanceOf(Promise)
    later!(undefined)
    await expect(waiting).resolves.toBeUndefined()
    const failing = commitPromise(storage((_c, _d, _t, done) => ((later = done), true)), change, 'fsync', 0)
    later!(new Error('EIO'))
    await expect(failing).rejects.toThrow('EIO')
  })

  test('what storage throws at once is thrown', () => {
    const refused = storage(() => {
      throw new Error('full')
    })
    expect(() => commitPromise(refused, change, 'fsync', 0)).toThrow('full')
  })
})
