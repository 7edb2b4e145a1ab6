// protocol/producer.ts — idempotent producer rules (PROTOCOL §5.2.1) as a pure decision.
// The engine applies the decision; this module never mutates state.

export interface ProducerState {
  epoch: number
  lastSeq: number
}

export type ProducerDecision =
  | { kind: 'accept' }
  | { kind: 'duplicate'; lastSeq: number }
  | { kind: 'stale-epoch'; currentEpoch: number }
  | { kind: 'epoch-needs-seq-zero' }
  | { kind: 'gap'; expectedSeq: number; receivedSeq: number }

export function decideProducer(state: ProducerState | undefined, epoch: number, seq: number): ProducerDecision {
  if (state === undefined) {
    return seq === 0 ? { kind: 'accept' } : { kind: 'gap', expectedSeq: 0, receivedSeq: seq }
  }
  if (epoch < state.epoch) return { kind: 'stale-epoch', currentEpoch: state.epoch }
  if (epoch > state.epoch) return seq === 0 ? { kind: 'accept' } : { kind: 'epoch-needs-seq-zero' }
  if (seq <= state.lastSeq) return { kind: 'duplicate', lastSeq: state.lastSeq }
  if (seq === state.lastSeq + 1) return { kind: 'accept' }
  return { kind: 'gap', expectedSeq: state.lastSeq + 1, receivedSeq: seq }
}
