// Public key helpers: new identities and their recipients.
import { newIdentityString, parseRecipient, recipientOf } from './keys.js'
import { throwIfAborted } from './reader.js'
import type { AbortOptions } from './types.js'

/** Generates a new X25519 identity, as an `AGE-SECRET-KEY-1…` string (keep it secret). */
export function generateIdentity(options: AbortOptions = {}): Promise<string> {
  // A throw inside the executor rejects the promise: errors never escape synchronously.
  return new Promise((resolve) => {
    throwIfAborted(options.signal)
    resolve(newIdentityString())
  })
}

/** The `age1…` recipient (public key) of an `AGE-SECRET-KEY-1…` identity. */
export function identityToRecipient(identity: string, options: AbortOptions = {}): Promise<string> {
  return new Promise((resolve) => {
    throwIfAborted(options.signal)
    resolve(recipientOf(identity))
  })
}

/** Throws `ERR_INVALID_RECIPIENT` (or `ERR_UNSUPPORTED`) unless `recipient` is an `age1…` X25519 recipient. */
export function assertRecipient(recipient: string): void {
  parseRecipient(recipient)
}
