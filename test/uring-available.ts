// test/uring-available.ts — whether the io_uring backend can run here, decided the way the
// server decides it (src/io/native-loader.ts, then io_uring_setup). Tests on the uring
// backend skip with the reason when it cannot, except where RINGSTREAM_REQUIRE_URING=1
// (CI sets it): there a missing or broken addon fails the run instead of hiding as a skip.

import { loadNativeAddon } from '../src/io/native-loader.js'
import { UringIo, type UringAddon } from '../src/io/uring.js'

function probe(): string | undefined {
  const loaded = loadNativeAddon()
  if (loaded.addon === undefined) return loaded.failures.join('; ')
  try {
    void new UringIo(loaded.addon as UringAddon, 1).shutdown()
    return undefined
  } catch (error) {
    return `io_uring_setup failed: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`
  }
}

/** Why the uring backend cannot run here, or undefined when it can. */
export const uringUnavailable: string | undefined = probe()

if (uringUnavailable !== undefined) {
  if (process.env.RINGSTREAM_REQUIRE_URING === '1') throw new Error(`io_uring backend required but unavailable: ${uringUnavailable}`)
  console.warn(`uring tests skipped: ${uringUnavailable}`)
}

/** The loaded addon; only call when uringUnavailable is undefined. */
export function uringAddon(): UringAddon {
  return loadNativeAddon().addon as UringAddon
}
