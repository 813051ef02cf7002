/**
 * @packageDocumentation
 *
 * The dcas server: store, read and delete across peers, with encrypted
 * replicas, healing and catch-up.
 */

export { assertValidKey, MAX_KEY_BYTES } from './key.js'
export { InvalidKeyError, SERVER_ERROR_CODES, ServerError } from './errors.js'
export type { ServerErrorCode } from './errors.js'
