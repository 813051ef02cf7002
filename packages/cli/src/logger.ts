// The daemon's log: pino, one line per event; JSON when stdout is not a terminal (for log
// collectors), readable lines when it is.
import { pino, type DestinationStream, type Logger } from 'pino'
import pretty from 'pino-pretty'
import { LOG_LEVELS } from './config.js'

export type { Logger }

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** pino level: `trace`, `debug`, `info` (default), `warn`, `error`, `fatal`, `silent`. */
  level?: string
  /** Human-readable lines instead of JSON (default: whether stdout is a terminal). */
  pretty?: boolean
  /** Where lines go (default: stdout). */
  destination?: DestinationStream
}

export { LOG_LEVELS }

/** A pino logger for `dcas serve`: JSON lines, or pretty ones on a terminal. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info'
  const prettyLines = options.pretty ?? process.stdout.isTTY === true
  if (prettyLines) {
    const stream = pretty({ colorize: true, singleLine: true, translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname', sync: true, ...(options.destination === undefined ? { destination: 1 } : {}) })
    if (options.destination !== undefined) stream.pipe(options.destination as unknown as NodeJS.WritableStream)
    return pino({ level }, stream)
  }
  return pino({ level, base: { pid: process.pid } }, options.destination ?? pino.destination({ dest: 1, sync: true }))
}

/** A logger that drops everything: the library default. */
export const silentLogger: Logger = pino({ level: 'silent' }, { write() {} })
