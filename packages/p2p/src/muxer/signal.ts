import { AbortedError } from '../errors.js'

/** The typed error for an aborted `signal`, keeping the signal's reason as its cause. */
export function abortedError(signal: AbortSignal): AbortedError {
  return new AbortedError('the operation was aborted', { cause: signal.reason })
}

/** Like `signal.throwIfAborted()`, but throws the typed {@link AbortedError}. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw abortedError(signal)
}
