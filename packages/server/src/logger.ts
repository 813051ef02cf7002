/**
 * Where the server reports what it does: a subset of pino's interface, so a
 * pino logger can be passed as is. Each call takes context fields, then a message.
 */
export interface Logger {
  debug(fields: object, message?: string): void
  info(fields: object, message?: string): void
  warn(fields: object, message?: string): void
  error(fields: object, message?: string): void
}

/** A logger that drops everything: the default. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
}
