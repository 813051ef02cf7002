/**
 * Typed errors of `@dcas/cli`. Callers test `code`, not `instanceof`: every
 * error has a stable `code`, keeps its `cause`, and carries the process exit
 * code the `dcas` command ends with, and a hint saying what to do.
 */

/** Every error code `@dcas/cli` raises. */
export const CLI_ERROR_CODES = [
  'ERR_USAGE',
  'ERR_INVALID_KEY',
  'ERR_NOT_INITIALIZED',
  'ERR_ALREADY_INITIALIZED',
  'ERR_CONFIG',
  'ERR_NOT_RUNNING',
  'ERR_ALREADY_RUNNING',
  'ERR_LISTEN',
  'ERR_UNAUTHORIZED',
  'ERR_NOT_FOUND',
  'ERR_QUORUM',
  'ERR_UNAVAILABLE',
  'ERR_INTEGRITY',
  'ERR_API',
  'ERR_ABORTED',
] as const

/** One of {@link CLI_ERROR_CODES}. */
export type CliErrorCode = (typeof CLI_ERROR_CODES)[number]

/** The exit code `dcas` ends with for each error code (0 is success, 1 an unexpected failure). */
export const EXIT_CODES: Readonly<Record<CliErrorCode, number>> = {
  ERR_USAGE: 2,
  ERR_INVALID_KEY: 2,
  ERR_NOT_INITIALIZED: 3,
  ERR_ALREADY_INITIALIZED: 3,
  ERR_CONFIG: 3,
  ERR_NOT_RUNNING: 4,
  ERR_ALREADY_RUNNING: 4,
  ERR_LISTEN: 4,
  ERR_UNAUTHORIZED: 4,
  ERR_NOT_FOUND: 5,
  ERR_QUORUM: 6,
  ERR_UNAVAILABLE: 7,
  ERR_INTEGRITY: 7,
  ERR_API: 1,
  ERR_ABORTED: 130,
}

/** Options of every {@link CliError}: the `cause`, and a hint saying what to do. */
export interface CliErrorOptions extends ErrorOptions {
  /** What the user can do about it, one sentence (printed under the message). */
  hint?: string
}

/** Base class of every `@dcas/cli` error. */
export class CliError extends Error {
  /** Stable machine-readable code. */
  readonly code: CliErrorCode
  /** What the user can do about it, if anything. */
  readonly hint: string | undefined

  constructor(code: CliErrorCode, message: string, options: CliErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.code = code
    this.hint = options.hint
  }

  /** The exit code of the `dcas` process for this error. */
  get exitCode(): number {
    return EXIT_CODES[this.code]
  }
}

/** The command line is wrong: an unknown option, a missing argument, a bad value. */
export class UsageError extends CliError {
  constructor(message: string, options?: CliErrorOptions) {
    super('ERR_USAGE', message, options)
  }
}

/** A key that is not 1 to 1024 bytes of UTF-8 without NUL. */
export class InvalidKeyError extends CliError {
  constructor(message: string, options?: CliErrorOptions) {
    super('ERR_INVALID_KEY', message, options)
  }
}

/** The data directory holds no dcas node (no `config.json` or no identity): run `dcas init`. */
export class NotInitializedError extends CliError {
  constructor(message: string, options?: CliErrorOptions) {
    super('ERR_NOT_INITIALIZED', message, options)
  }
}

/** `dcas init` found an identity or a config already there and changed nothing. */
export class AlreadyInitializedError extends CliError {
  constructor(message: string, options?: CliErrorOptions) {
    super('ERR_ALREADY_INITIALIZED', message, options)
  }
}

/** `config.json` (or a join file) is not valid; the message names the field. */
export class ConfigError extends CliError {
  constructor(message: string, options?: CliErrorOptions) {
    super('ERR_CONFIG', message, options)
  }
}

/** No node is running for the data directory (no `api.json`, or its API refuses connections). */
export class NotRunningError extends CliError {
  constructor(message: string, options?: CliErrorOptions) {
    super('ERR_NOT_RUNNING', message, options)
  }
}

/** `dcas serve` found another node running on the same data directory. */
export class AlreadyRunningError extends CliError {
  constructor(message: string, options?: CliErrorOptions) {
    super('ERR_ALREADY_RUNNING', message, options)
  }
}

/** `dcas serve` could not listen on its peer or HTTP address (in use, not local, not permitted). */
export class ListenError extends CliError {
  constructor(message: string, options?: CliErrorOptions) {
    super('ERR_LISTEN', message, options)
  }
}

/** The HTTP API refused the bearer token (the token in `api.json` belongs to another run). */
export class UnauthorizedError extends CliError {
  constructor(message: string, options?: CliErrorOptions) {
    super('ERR_UNAUTHORIZED', message, options)
  }
}

/** No object is stored under the key. */
export class NotFoundError extends CliError {
  constructor(message: string, options?: CliErrorOptions) {
    super('ERR_NOT_FOUND', message, options)
  }
}

/** Who acknowledged what when a put fell short of the write quorum (as the node reported it). */
export interface QuorumDetails {
  key: string
  needed: number
  replicas: string[]
  failed: Array<{ nodeId: string; error: string }>
  /** The placed holders that could be reached. */
  reachable?: number
  /** How many holders the object is placed on. */
  placed?: number
  /** Whether the node committed the object (`false`: too few holders could be reached, and nothing was stored). */
  committed?: boolean
}

/** Fewer placed holders than the write quorum acknowledged a copy (`details.committed` tells whether the node kept it). */
export class QuorumError extends CliError {
  /** Who holds what, when the node said. */
  readonly details: QuorumDetails | undefined

  constructor(message: string, details?: QuorumDetails, options?: CliErrorOptions) {
    super('ERR_QUORUM', message, options)
    this.details = details
  }
}

/** A chunk is lost or damaged on the node and no peer could supply it, or the node broke off a transfer. */
export class UnavailableError extends CliError {
  constructor(message: string, options?: CliErrorOptions) {
    super('ERR_UNAVAILABLE', message, options)
  }
}

/** Bytes did not match their SHA-256 or their announced length: nothing unverified is kept. */
export class IntegrityError extends CliError {
  constructor(message: string, options?: CliErrorOptions) {
    super('ERR_INTEGRITY', message, options)
  }
}

/** The HTTP API answered something unexpected (the status and the node's error code are in the message). */
export class ApiError extends CliError {
  /** The HTTP status. */
  readonly status: number
  /** The error code the node answered with, if any. */
  readonly remoteCode: string | undefined

  constructor(message: string, status: number, remoteCode?: string, options?: CliErrorOptions) {
    super('ERR_API', message, options)
    this.status = status
    this.remoteCode = remoteCode
  }
}

/** The operation was aborted (its `signal`, or Ctrl-C). */
export class AbortedError extends CliError {
  constructor(message = 'the operation was aborted', options?: CliErrorOptions) {
    super('ERR_ABORTED', message, options)
  }
}

/** Throws the signal's abort as an {@link AbortedError} (keeping the reason as `cause`). */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new AbortedError(undefined, { cause: signal.reason })
}

/** The `code` of any error-like value. */
export const codeOf = (err: unknown): string | undefined => {
  const code = (err as { code?: unknown } | null | undefined)?.code
  return typeof code === 'string' ? code : undefined
}

/** The message of any error-like value. */
export const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err))
