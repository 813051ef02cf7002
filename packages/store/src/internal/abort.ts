import { AbortedError } from '../errors.js'

/** The typed error of an aborted call, keeping the signal's reason as its cause. */
export function abortedError(signal: AbortSignal): AbortedError {
  return new AbortedError('the operation was aborted', { cause: signal.reason })
}

/** Throws `ERR_ABORTED` when the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw abortedError(signal)
}

/**
 * Awaits `promise`, or rejects with `ERR_ABORTED` as soon as the signal fires.
 * The abort listener is removed in one `finally`.
 */
export async function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise
  throwIfAborted(signal)
  let onAbort: (() => void) | undefined
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(abortedError(signal))
    signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    return await Promise.race([promise, aborted])
  } finally {
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
  }
}
