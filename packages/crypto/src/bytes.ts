// One-shot helpers over the streaming API, for payloads already in memory (such as a 1 MiB chunk).
import { decrypt, decryptWithPassphrase, encrypt, encryptWithPassphrase } from './age.js'
import { InvalidArgumentError } from './errors.js'
import { joinViews } from './reader.js'
import type { DecryptOptions, EncryptOptions, PassphraseDecryptOptions, PassphraseEncryptOptions } from './types.js'

function checkBytes(input: unknown, what: string): void {
  if (!(input instanceof Uint8Array) && typeof input !== 'string') {
    throw new InvalidArgumentError(`${what} must be a Uint8Array or a string`)
  }
}

/** Joins the output of a stream whose input is already whole in memory: its size is bounded by that input. */
async function gather(stream: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = []
  let size = 0
  for await (const part of stream) {
    parts.push(part)
    size += part.length
  }
  return parts.length === 1 ? parts[0]! : joinViews(parts, size)
}

/**
 * Encrypts an in-memory payload to `recipients` and returns the whole age file
 * as one array. For large or streamed data use {@link encrypt}.
 *
 * `options.seed` (32 secret bytes, unique per plaintext) makes the result
 * deterministic: read {@link EncryptOptions.seed}.
 */
export async function encryptBytes(
  plaintext: Uint8Array | string,
  recipients: readonly string[],
  options: EncryptOptions = {},
): Promise<Uint8Array> {
  checkBytes(plaintext, 'plaintext')
  return gather(encrypt(plaintext, recipients, options))
}

/** {@link encryptBytes} under a passphrase. */
export async function encryptBytesWithPassphrase(
  plaintext: Uint8Array | string,
  passphrase: string,
  options: PassphraseEncryptOptions = {},
): Promise<Uint8Array> {
  checkBytes(plaintext, 'plaintext')
  return gather(encryptWithPassphrase(plaintext, passphrase, options))
}

/** Decrypts a whole age file held in memory (binary or armored) and returns its plaintext as one array. */
export async function decryptBytes(
  ciphertext: Uint8Array | string,
  identities: readonly string[],
  options: DecryptOptions = {},
): Promise<Uint8Array> {
  checkBytes(ciphertext, 'ciphertext')
  return gather(decrypt(ciphertext, identities, options))
}

/** {@link decryptBytes} for a passphrase-encrypted file. */
export async function decryptBytesWithPassphrase(
  ciphertext: Uint8Array | string,
  passphrase: string,
  options: PassphraseDecryptOptions = {},
): Promise<Uint8Array> {
  checkBytes(ciphertext, 'ciphertext')
  return gather(decryptWithPassphrase(ciphertext, passphrase, options))
}
