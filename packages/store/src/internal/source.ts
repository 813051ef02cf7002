import { InvalidArgumentError } from '../errors.js'
import type { ByteSource } from '../types.js'
import { raceAbort, throwIfAborted } from './abort.js'

function bytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk
  throw new InvalidArgumentError(`a source chunk must be a Uint8Array, got ${chunk === null ? 'null' : typeof chunk}`)
}

/**
 * Iterates a {@link ByteSource} as byte chunks. Errors of the source pass through unchanged;
 * a chunk that is not a `Uint8Array` fails with `ERR_INVALID_ARGUMENT`; the signal interrupts
 * even a source that never yields again.
 */
export async function* chunksOf(source: ByteSource, signal: AbortSignal | undefined): AsyncGenerator<Uint8Array> {
  throwIfAborted(signal)
  if (source instanceof Uint8Array) {
    yield source
    return
  }
  if (typeof source === 'string') {
    yield Buffer.from(source, 'utf8')
    return
  }
  if (typeof source === 'object' && source !== null && Symbol.asyncIterator in source) {
    const iterator = source[Symbol.asyncIterator]()
    let done = false
    try {
      for (;;) {
        const next = await raceAbort(iterator.next(), signal)
        if (next.done === true) {
          done = true
          return
        }
        yield bytes(next.value)
      }
    } finally {
      // Tell the source we stop early; a source stuck in `next()` may never answer, so don't wait.
      if (!done) void Promise.resolve(iterator.return?.()).catch(() => undefined)
    }
  }
  if (typeof source === 'object' && source !== null && Symbol.iterator in source) {
    for (const chunk of source) {
      throwIfAborted(signal)
      yield bytes(chunk)
    }
    return
  }
  throw new InvalidArgumentError('source must be a Uint8Array, a string, or an (async) iterable of Uint8Array')
}
