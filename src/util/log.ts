// util/log.ts — the server's log, through pino: JSON lines (time, level, message, fields) or
// text lines (the message alone: messages are whole sentences, fields repeat them for
// machines), at a level (--log-format, --log-level).
// Info and below go to stdout, warnings and errors to stderr. Nothing is logged per request:
// startup, recovery, shutdown, and what goes wrong (checkpoints, data-file writes, a full
// disk, damaged entries, unexpected errors).

import { pino, type DestinationStream, type Logger } from 'pino'

export type LogFormat = 'text' | 'json'
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

// Logs are best effort: a reader of stdout/stderr that went away (EPIPE: a closed pipe, a
// supervisor restarting its log collector) must not take the server down, as it does not
// with console.log.
let guarded = false
function guardOutputs(): void {
  if (guarded) return
  guarded = true
  for (const out of [process.stdout, process.stderr]) out.on('error', () => {})
}

/** One JSON line in, its message out. */
function textLine(line: string): string {
  return `${String((JSON.parse(line) as { message?: unknown }).message ?? '')}\n`
}

function destination(format: LogFormat): DestinationStream {
  guardOutputs()
  return {
    write(line: string): void {
      // pino writes one record per call; its level decides the stream.
      const out = /^\{"level":"(warn|error|fatal)"/.test(line) ? process.stderr : process.stdout
      out.write(format === 'json' ? line : textLine(line))
    },
  }
}

function create(format: LogFormat, level: LogLevel): Logger {
  return pino(
    {
      level,
      base: undefined,
      messageKey: 'message',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination(format),
  )
}

/** The process's logger; configureLog() replaces it (the CLI, from its flags). */
export let log: Logger = create('text', 'info')

export function configureLog(format: LogFormat, level: LogLevel): void {
  log = create(format, level)
}
