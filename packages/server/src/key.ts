import { InvalidKeyError } from './errors.js'

/** The longest key, in bytes of UTF-8. */
export const MAX_KEY_BYTES = 1024

/**
 * Checks that `key` is a string of 1 to {@link MAX_KEY_BYTES} bytes of
 * well-formed UTF-8 without NUL, and throws `ERR_INVALID_KEY` otherwise.
 * Keys are opaque: they never become paths.
 */
export function assertValidKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') throw new InvalidKeyError(`key must be a string, got ${typeof key}`)
  if (key.length === 0) throw new InvalidKeyError('key must not be empty')
  if (!key.isWellFormed()) throw new InvalidKeyError('key must be well-formed UTF-8 (no lone surrogates)')
  if (key.includes('\0')) throw new InvalidKeyError('key must not contain NUL')
  const bytes = Buffer.byteLength(key, 'utf8')
  if (bytes > MAX_KEY_BYTES) throw new InvalidKeyError(`key is ${bytes} bytes of UTF-8; at most ${MAX_KEY_BYTES} are allowed`)
}
