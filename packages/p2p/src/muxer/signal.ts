import { AbortedError } from '../errors.js'

/** The typed error for an aborted `signal`, keeping the signal's reason as its cause. */
export function abortedError(signal: AbortSignal): AbortedError {
  return new AbortedError('the operation was aborted', { cause: signal.reason })
}

/** Like `signal.throwIfAborted()`, but throws the typed {@link AbortedError}. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw abortedError(signal)
}

/**
 * Waits for what `start` sets up (it receives the promise's `resolve` and
 * `reject`), rejecting with {@link AbortedError} if `signal` aborts first; then
 * `cancel` undoes what `start` registered. The abort listener is removed in one
 * `finally`.
 */
export async function abortable<T>(
  signal: AbortSignal | undefined,
  start: (resolve: (value: T) => void, reject: (err: Error) => void) => void,
  cancel: () => void,
): Promise<T> {
  let onAbort: (() => void) | undefined
  try {
    return await new Promise<T>((resolve, reject) => {
      start(resolve, reject)
      if (signal === undefined) return
      onAbort = () => {
        reject(abortedError(signal))
        cancel()
      }
      signal.addEventListener('abort', onAbort, { once: true })
    })
  } finally {
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort)
  }
}
