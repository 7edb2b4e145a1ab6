// storage/checkpoint.ts — the checkpoint file: the registry (stream metadata, tails,
// producer states, closed/deleted/fork state, boundary indexes) as of one WAL LSN.
// Written to a temporary file, synced, renamed over the previous one, directory synced:
// a crash leaves either the old or the new checkpoint, never a mix.
// Format: JSON {"format":"ringstream-checkpoint","version":1,"lsn":N,"crc32":C,"state":{…}},
// where crc32 covers the JSON text of "state".

import { crc32 } from 'node:zlib'
import type { Io } from '../io/types.js'
import type { DataPaths } from './paths.js'
import type { EngineSnapshot } from './types.js'
import { WalCorruptionError } from './wal-reader.js'

const FORMAT = 'ringstream-checkpoint'
/** Version 2: index entry counts instead of version 1's per-append arrays (whose index
 * files do not exist); a version 1 checkpoint is refused with a message naming both. */
const VERSION = 2

export interface Checkpoint {
  readonly lsn: number
  readonly state: EngineSnapshot
}

export async function writeCheckpoint(io: Io, paths: DataPaths, checkpoint: Checkpoint): Promise<void> {
  const stateText = JSON.stringify(checkpoint.state)
  const text = `{"format":"${FORMAT}","version":${VERSION},"lsn":${checkpoint.lsn},"crc32":${crc32(stateText)},"state":${stateText}}`
  const file = await io.open(paths.checkpointTmp, true)
  try {
    await io.truncate(file, 0)
    await io.writev(file, [Buffer.from(text)], 0, true)
  } finally {
    await io.close(file)
  }
  await io.rename(paths.checkpointTmp, paths.checkpoint)
  await io.syncDir(paths.root)
}

export async function readCheckpoint(io: Io, paths: DataPaths): Promise<Checkpoint | undefined> {
  let file
  try {
    file = await io.open(paths.checkpoint, false)
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return undefined
    throw error
  }
  try {
    const buffer = Buffer.allocUnsafe(await io.size(file))
    await io.read(file, buffer, 0)
    const text = buffer.toString('utf8')
    const stateStart = text.indexOf('"state":')
    const parsed = JSON.parse(text) as { format?: string; version?: number; lsn?: number; crc32?: number; state?: EngineSnapshot }
    if (parsed.format === FORMAT && parsed.version === 1) {
      throw new WalCorruptionError(
        `${paths.checkpoint} is a version 1 checkpoint (ringstream 0.1, boundary arrays in the checkpoint); this ringstream reads version ${VERSION} (index files beside the data files). Start ringstream 0.1 on this directory and export its streams, or start this version on a new --data-dir`,
      )
    }
    if (parsed.format !== FORMAT || parsed.version !== VERSION || typeof parsed.lsn !== 'number' || parsed.state === undefined) {
      throw new WalCorruptionError(`${paths.checkpoint} is not a version ${VERSION} checkpoint`)
    }
    const stateText = text.slice(stateStart + '"state":'.length, text.lastIndexOf('}'))
    if (crc32(stateText) !== parsed.crc32) throw new WalCorruptionError(`${paths.checkpoint} fails its checksum`)
    return { lsn: parsed.lsn, state: parsed.state }
  } catch (error) {
    if (error instanceof SyntaxError) throw new WalCorruptionError(`${paths.checkpoint} is not valid JSON`)
    throw error
  } finally {
    await io.close(file)
  }
}
