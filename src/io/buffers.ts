// io/buffers.ts — arithmetic on lists of buffers that both real backends need when a
// vectored write comes back short.

export function byteLength(buffers: readonly Uint8Array[]): number {
  let total = 0
  for (const buffer of buffers) total += buffer.length
  return total
}

/** What is left of `buffers` after the first `written` bytes. */
export function remainder(buffers: readonly Uint8Array[], written: number): Uint8Array[] {
  const rest: Uint8Array[] = []
  for (const buffer of buffers) {
    if (written >= buffer.length) {
      written -= buffer.length
    } else {
      rest.push(written > 0 ? buffer.subarray(written) : buffer)
      written = 0
    }
  }
  return rest
}
