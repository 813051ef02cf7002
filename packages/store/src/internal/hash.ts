import { createHash } from 'node:crypto'
import { IntegrityError } from '../errors.js'

/** Lowercase hex SHA-256 of `bytes`. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/** Throws `ERR_INTEGRITY` when bytes that hash to `actual` were expected to hash to `expected`. */
export function assertExpected(expected: string | undefined, actual: string): void {
  if (expected !== undefined && expected !== actual) {
    throw new IntegrityError(`bytes hash to ${actual}, not to the expected id ${expected}; nothing was kept`)
  }
}
