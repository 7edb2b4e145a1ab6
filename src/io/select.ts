// io/select.ts — decides the I/O backend once at startup from --io auto|uring|fs: uring when
// the addon loads and io_uring_setup succeeds, node:fs otherwise (auto) or a clear startup
// error (uring). The returned description is what the startup line prints.

import { loadNativeAddon } from './native-loader.js'
import { NodeFsIo } from './node-fs.js'
import type { Io } from './types.js'
import { UringIo, type UringAddon } from './uring.js'

/** --io: auto picks uring when it works, node:fs otherwise. */
export type IoBackend = 'auto' | 'uring' | 'fs'

export interface IoChoice {
  readonly io: Io
  /** e.g. "uring (prebuilt ringstream-linux-x64-gnu)" or "node-fs (io_uring_setup: EPERM)". */
  readonly description: string
  /** Frees what the backend holds (the ring); call after storage is closed. */
  release(): Promise<void>
}

/** Thrown when --io uring was asked for and cannot be had. */
export class IoUnavailableError extends Error {
  override readonly name = 'IoUnavailableError'
}

const nothingToRelease = async (): Promise<void> => {}

export function selectIo(requested: IoBackend): IoChoice {
  if (requested === 'fs') return { io: new NodeFsIo(), description: 'node-fs (requested)', release: nothingToRelease }
  const loaded = loadNativeAddon()
  let reason: string
  if (loaded.addon === undefined) {
    reason = loaded.failures.join('; ')
  } else {
    try {
      const uring = new UringIo(loaded.addon as UringAddon)
      return { io: uring, description: `uring (${loaded.source})`, release: () => uring.shutdown() }
    } catch (error) {
      // EPERM/ENOSYS: seccomp or kernel.io_uring_disabled, as in many containers.
      const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message
      reason = `io_uring_setup failed: ${code}`
    }
  }
  if (requested === 'uring') {
    throw new IoUnavailableError(`--io uring: io_uring is not available here (${reason}); use --io auto or --io fs`)
  }
  return { io: new NodeFsIo(), description: `node-fs (io_uring unavailable: ${reason})`, release: nothingToRelease }
}
