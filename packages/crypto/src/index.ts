/**
 * @packageDocumentation
 *
 * Stream encryption in the age v1 format (age-encryption.org/v1), built on
 * `node:crypto`: what dcas writes, `age -d` reads, and the reverse. X25519 and
 * passphrase (scrypt) recipients, binary or ASCII-armored files, identity files
 * shared with the age command line, and deterministic encryption (`seed`) for
 * content-addressed storage.
 *
 * @example
 * ```ts
 * import { decrypt, encrypt, generateIdentity, identityToRecipient } from '@dcas/crypto'
 *
 * const identity = await generateIdentity()
 * const recipient = await identityToRecipient(identity)
 * const ciphertext = encrypt('hello, age', [recipient])
 * for await (const chunk of decrypt(ciphertext, [identity])) process.stdout.write(chunk)
 * ```
 */

export type {
  AbortOptions,
  ByteSource,
  DecryptedBlob,
  DecryptOptions,
  EncryptBlobOptions,
  EncryptedBlob,
  SealedBlob,
  EncryptOptions,
  PassphraseDecryptOptions,
  PassphraseEncryptOptions,
  WriteIdentityFileOptions,
} from './types.js'
export { decrypt, decryptWithPassphrase, encrypt, encryptWithPassphrase } from './age.js'
export { decryptBlob, decryptBytes, decryptBytesWithPassphrase, encryptBlob, encryptBlobPieces, encryptBytes, encryptBytesWithPassphrase } from './bytes.js'
export { assertRecipient, generateIdentity, identityToRecipient } from './identity.js'
export {
  formatIdentityFile,
  loadOrCreateIdentityFile,
  parseIdentityFile,
  readIdentityFile,
  writeIdentityFile,
  type IdentityFileContents,
} from './identity-file.js'
export { DEFAULT_MAX_WORK_FACTOR, DEFAULT_WORK_FACTOR } from './stanzas.js'
export { SEED_BYTES } from './randomness.js'
export { DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_STANZAS } from './header.js'
export {
  AbortedError,
  ArmorError,
  ChunkAuthError,
  CRYPTO_ERROR_CODES,
  CryptoError,
  EmptyLastChunkError,
  FormatError,
  HeaderMacError,
  HeaderTooLargeError,
  IdentityFileExistsError,
  InvalidArgumentError,
  InvalidIdentityError,
  InvalidRecipientError,
  NoMatchingIdentityError,
  TooManyStanzasError,
  TrailingDataError,
  TruncatedError,
  UnsupportedError,
  WorkFactorError,
} from './errors.js'
export type { CryptoErrorCode } from './errors.js'
