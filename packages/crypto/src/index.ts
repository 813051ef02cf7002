/**
 * @packageDocumentation
 *
 * Stream encryption in the age v1 format (age-encryption.org/v1), built on
 * `node:crypto`: what dcas writes, `age -d` reads, and the reverse.
 */

export type { AbortOptions, ByteSource } from './types.js'
export { CRYPTO_ERROR_CODES, CryptoError, FormatError } from './errors.js'
export type { CryptoErrorCode } from './errors.js'
