// Unit tests for protocol/producer.ts: every idempotent-producer decision, plus a model-based check.

import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import { type ProducerDecision, type ProducerState, decideProducer } from './producer.js'

describe('decideProducer: unknown producer', () => {
  test('seq 0 is accepted', () => {
    expect(decideProducer(undefined, 0, 0)).toEqual({ kind: 'accept' })
    expect(decideProducer(undefined, 5, 0)).toEqual({ kind: 'accept' })
  })

  test('seq > 0 is a gap expecting 0', () => {
    expect(decideProducer(undefined, 0, 1)).toEqual({ kind: 'gap', expectedSeq: 0, receivedSeq: 1 })
    expect(decideProducer(undefined, 3, 9)).toEqual({ kind: 'gap', expectedSeq: 0, receivedSeq: 9 })
  })
})

describe('decideProducer: known producer', () => {
  const state: ProducerState = { epoch: 2, lastSeq: 5 }

  test('lower epoch is stale and reports the current epoch', () => {
    expect(decideProducer(state, 1, 6)).toEqual({ kind: 'stale-epoch', currentEpoch: 2 })
    expect(decideProducer(state, 0, 0)).toEqual({ kind: 'stale-epoch', currentEpoch: 2 })
  })

  test('higher epoch with seq 0 is accepted', () => {
    expect(decideProducer(state, 3, 0)).toEqual({ kind: 'accept' })
    expect(decideProducer(state, 100, 0)).toEqual({ kind: 'accept' })
  })

  test('higher epoch with seq ≠ 0 needs seq zero', () => {
    expect(decideProducer(state, 3, 1)).toEqual({ kind: 'epoch-needs-seq-zero' })
    expect(decideProducer(state, 3, 6)).toEqual({ kind: 'epoch-needs-seq-zero' })
  })

  test('same epoch, seq ≤ lastSeq is a duplicate reporting lastSeq, not the request seq', () => {
    expect(decideProducer(state, 2, 5)).toEqual({ kind: 'duplicate', lastSeq: 5 })
    expect(decideProducer(state, 2, 3)).toEqual({ kind: 'duplicate', lastSeq: 5 })
    expect(decideProducer(state, 2, 0)).toEqual({ kind: 'duplicate', lastSeq: 5 })
  })

  test('same epoch, lastSeq + 1 is accepted', () => {
    expect(decideProducer(state, 2, 6)).toEqual({ kind: 'accept' })
    expect(decideProducer({ epoch: 0, lastSeq: 0 }, 0, 1)).toEqual({ kind: 'accept' })
  })

  test('same epoch, beyond lastSeq + 1 is a gap with expected and received seq', () => {
    expect(decideProducer(state, 2, 7)).toEqual({ kind: 'gap', expectedSeq: 6, receivedSeq: 7 })
    expect(decideProducer(state, 2, 1000)).toEqual({ kind: 'gap', expectedSeq: 6, receivedSeq: 1000 })
  })

  test('does not mutate the state', () => {
    const s: ProducerState = { epoch: 1, lastSeq: 1 }
    decideProducer(s, 1, 2)
    decideProducer(s, 2, 0)
    expect(s).toEqual({ epoch: 1, lastSeq: 1 })
  })
})

/**
 * Reference model, formulated differently from the module: per producer it keeps the current
 * epoch and the set of sequence numbers accepted in that epoch (which must always be 0..n-1).
 */
class ModelProducer {
  epoch: number | undefined
  accepted = new Set<number>()

  decide(epoch: number, seq: number): ProducerDecision {
    if (this.epoch === undefined || epoch > this.epoch) {
      if (seq === 0) return { kind: 'accept' }
      return this.epoch === undefined ? { kind: 'gap', expectedSeq: 0, receivedSeq: seq } : { kind: 'epoch-needs-seq-zero' }
    }
    if (epoch < this.epoch) return { kind: 'stale-epoch', currentEpoch: this.epoch }
    if (this.accepted.has(seq)) return { kind: 'duplicate', lastSeq: Math.max(...this.accepted) }
    if (seq === this.accepted.size) return { kind: 'accept' }
    return { kind: 'gap', expectedSeq: this.accepted.size, receivedSeq: seq }
  }

  apply(epoch: number, seq: number): void {
    if (this.epoch !== epoch) {
      this.epoch = epoch
      this.accepted = new Set()
    }
    this.accepted.add(seq)
  }

  state(): ProducerState | undefined {
    return this.epoch === undefined ? undefined : { epoch: this.epoch, lastSeq: this.accepted.size - 1 }
  }
}

describe('decideProducer: model-based', () => {
  test('agrees with the reference model over random request sequences', () => {
    const seen = new Set<ProducerDecision['kind']>()
    const request = fc.record({ producer: fc.constantFrom('a', 'b'), epoch: fc.nat(3), seq: fc.nat(4) })
    fc.assert(
      fc.property(fc.array(request, { maxLength: 60 }), (requests) => {
        const models = new Map<string, ModelProducer>()
        const states = new Map<string, ProducerState>()
        for (const { producer, epoch, seq } of requests) {
          let model = models.get(producer)
          if (model === undefined) {
            model = new ModelProducer()
            models.set(producer, model)
          }
          const expected = model.decide(epoch, seq)
          const actual = decideProducer(states.get(producer), epoch, seq)
          expect(actual).toEqual(expected)
          seen.add(actual.kind)
          // The engine applies an accepted request: (epoch, seq) becomes the producer's state.
          if (actual.kind === 'accept') {
            model.apply(epoch, seq)
            states.set(producer, { epoch, lastSeq: seq })
            expect(states.get(producer)).toEqual(model.state())
          }
        }
      }),
      { numRuns: 500 },
    )
    // The generator must actually reach every branch for the property to mean anything.
    expect([...seen].sort()).toEqual(['accept', 'duplicate', 'epoch-needs-seq-zero', 'gap', 'stale-epoch'])
  })

  test('a well-behaved producer retrying every request gets accept then duplicate', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 5 }), { maxLength: 10 }), (batchesPerEpoch) => {
        let state: ProducerState | undefined
        batchesPerEpoch.forEach((count, epoch) => {
          for (let seq = 0; seq < count; seq++) {
            expect(decideProducer(state, epoch, seq)).toEqual({ kind: 'accept' })
            state = { epoch, lastSeq: seq }
            expect(decideProducer(state, epoch, seq)).toEqual({ kind: 'duplicate', lastSeq: seq })
          }
        })
      }),
    )
  })
})
