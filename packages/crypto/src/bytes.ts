// One-shot helpers for payloads already in memory (such as a 1 MiB chunk): one output array (or, from
// encryptBlobPieces, the pieces it was sealed into), no stream pieces kept.
import { createHash } from 'node:crypto'
import { decrypt, decryptWithPassphrase, encrypt, encryptInPieces, encryptWithPassphrase } from './age.js'
import { InvalidArgumentError } from './errors.js'
import { joinViews } from './reader.js'
import type {
  DecryptedBlob,
  DecryptOptions,
  EncryptBlobOptions,
  EncryptedBlob,
  EncryptOptions,
  PassphraseDecryptOptions,
  PassphraseEncryptOptions,
  SealedBlob,
} from './types.js'

/** What the in-memory decryptors take: one array, a string (UTF-8, e.g. an armored file), or the pieces of one. */
type InMemoryCiphertext = Uint8Array | string | readonly Uint8Array[]

function checkBytes(input: unknown, what: string): void {
  if (!(input instanceof Uint8Array) && typeof input !== 'string') {
    throw new InvalidArgumentError(`${what} must be a Uint8Array or a string`)
  }
}

function checkCiphertext(input: unknown): void {
  if (Array.isArray(input)) {
    if (!input.every((piece) => piece instanceof Uint8Array)) throw new InvalidArgumentError('ciphertext pieces must be Uint8Arrays')
    return
  }
  checkBytes(input, 'ciphertext')
}

function plaintextBytes(plaintext: Uint8Array | string): Uint8Array {
  return typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext
}

/**
 * Bytes in the input (one array, a string's UTF-8, or the pieces of one). For a ciphertext, a bound on the plaintext
 * inside (age adds a header and a tag per chunk; armor only grows it).
 */
function inputLength(input: InMemoryCiphertext): number {
  if (typeof input === 'string') return Buffer.byteLength(input, 'utf8')
  if (input instanceof Uint8Array) return input.length
  return input.reduce((n, piece) => n + piece.length, 0)
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
 * Copies each verified piece of a decryption into one array sized by `bound` (no list of pieces,
 * no second copy), feeding `hash` on the way; returns the filled part.
 */
async function gatherInto(stream: AsyncIterable<Uint8Array>, bound: number, hash?: ReturnType<typeof createHash>): Promise<Uint8Array> {
  // Not from the shared pool: the result belongs to the caller.
  const out = Buffer.allocUnsafeSlow(bound)
  let size = 0
  for await (const piece of stream) {
    out.set(piece, size)
    size += piece.length
    hash?.update(piece)
  }
  return out.subarray(0, size)
}

/**
 * Encrypts an in-memory payload to `recipients` and returns the whole age file
 * as one array, sealed straight into it (no stream pieces, no join). For large or
 * streamed data use {@link encrypt}.
 *
 * `options.seed` (32 secret bytes, unique per plaintext) makes the result
 * deterministic: read {@link EncryptOptions.seed}. The bytes are those {@link encrypt}
 * gives for the same arguments.
 */
export async function encryptBytes(
  plaintext: Uint8Array | string,
  recipients: readonly string[],
  options: EncryptOptions = {},
): Promise<Uint8Array> {
  checkBytes(plaintext, 'plaintext')
  if (options.armor === true) return gather(encrypt(plaintext, recipients, options))
  const pieces = await encryptInPieces(plaintextBytes(plaintext), recipients, options)
  return joinViews(pieces, inputLength(pieces))
}

/**
 * Encrypts an in-memory payload like {@link encryptBytes} (binary, never armored) and
 * returns the age file with its SHA-256, computed while the file was sealed: each byte is
 * hashed once, while still in cache, instead of in a second pass over the result.
 * This is the blob a content-addressed store keeps under `sha256` (dcas's `cipherId`).
 *
 * @example
 * ```ts
 * const { ciphertext, sha256 } = await encryptBlob(chunk, [recipient], { seed })
 * ```
 */
export async function encryptBlob(
  plaintext: Uint8Array | string,
  recipients: readonly string[],
  options: EncryptBlobOptions = {},
): Promise<EncryptedBlob> {
  const { pieces, size, sha256 } = await encryptBlobPieces(plaintext, recipients, options)
  return { ciphertext: joinViews(pieces, size), sha256 }
}

/**
 * Encrypts an in-memory payload like {@link encryptBlob} (the same bytes, the same SHA-256), but
 * returns the age file as the pieces it was sealed into: the header, then each 64 KiB chunk's
 * ciphertext and tag. Nothing is copied into one array: for a caller that only writes the file
 * out (to a socket or a file, which copy it anyway), that is one allocation and one copy of the
 * whole file less.
 *
 * @example
 * ```ts
 * const { pieces, size, sha256 } = await encryptBlobPieces(chunk, [recipient], { seed })
 * for (const piece of pieces) socket.write(piece)
 * ```
 */
export async function encryptBlobPieces(
  plaintext: Uint8Array | string,
  recipients: readonly string[],
  options: EncryptBlobOptions = {},
): Promise<SealedBlob> {
  checkBytes(plaintext, 'plaintext')
  if ((options as EncryptOptions).armor === true) throw new InvalidArgumentError('a blob is a binary age file: armor is not an option')
  const hash = createHash('sha256')
  const pieces = await encryptInPieces(plaintextBytes(plaintext), recipients, options, hash)
  return { pieces, size: inputLength(pieces), sha256: hash.digest('hex') }
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

/**
 * Decrypts a whole age file held in memory (binary or armored; one array, a string, or the
 * pieces it arrived in, which are never joined) and returns its plaintext as one array, each
 * verified chunk copied into it once.
 */
export async function decryptBytes(
  ciphertext: InMemoryCiphertext,
  identities: readonly string[],
  options: DecryptOptions = {},
): Promise<Uint8Array> {
  checkCiphertext(ciphertext)
  return gatherInto(decrypt(ciphertext, identities, options), inputLength(ciphertext))
}

/**
 * Decrypts like {@link decryptBytes} and returns the plaintext with its SHA-256, computed
 * while each verified chunk was copied out: the check of a content address (dcas's
 * `plainId`) without a second pass. Compare `sha256` before using `plaintext`: the
 * age tags prove the file was made for these identities, not what its content is.
 *
 * @example
 * ```ts
 * const { plaintext, sha256 } = await decryptBlob(pieces, [identity])
 * if (sha256 !== plainId) throw new Error('not the chunk asked for')
 * ```
 */
export async function decryptBlob(
  ciphertext: InMemoryCiphertext,
  identities: readonly string[],
  options: DecryptOptions = {},
): Promise<DecryptedBlob> {
  checkCiphertext(ciphertext)
  const hash = createHash('sha256')
  const plaintext = await gatherInto(decrypt(ciphertext, identities, options), inputLength(ciphertext), hash)
  return { plaintext, sha256: hash.digest('hex') }
}

/** {@link decryptBytes} for a passphrase-encrypted file. */
export async function decryptBytesWithPassphrase(
  ciphertext: InMemoryCiphertext,
  passphrase: string,
  options: PassphraseDecryptOptions = {},
): Promise<Uint8Array> {
  checkCiphertext(ciphertext)
  return gatherInto(decryptWithPassphrase(ciphertext, passphrase, options), inputLength(ciphertext))
}
