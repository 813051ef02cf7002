// encrypt / decrypt: header, file key, payload, armor.
import type { Hash, KeyObject } from 'node:crypto'
import { MAX_ARMOR_WHITESPACE, armor, dearmor, isWhitespace } from './armor.js'
import { InvalidArgumentError, TruncatedError } from './errors.js'
import { encodeHeader, headerLimits, readHeader, verifyHeaderMac, type Header, type Stanza } from './header.js'
import { parseIdentity, recipientKey, type X25519Identity } from './keys.js'
import { randomnessFor, type EncryptionRandomness } from './randomness.js'
import { ByteReader, throwIfAborted } from './reader.js'
import {
  DEFAULT_MAX_WORK_FACTOR,
  DEFAULT_WORK_FACTOR,
  checkScryptAlone,
  checkScryptOptions,
  noMatch,
  unwrapScrypt,
  unwrapX25519,
  wrapScrypt,
  wrapX25519,
} from './stanzas.js'
import { PAYLOAD_NONCE_SIZE, openPayload, payloadKey, sealPayload, sealPieces } from './stream.js'
import type {
  AbortOptions,
  ByteSource,
  DecryptOptions,
  EncryptOptions,
  PassphraseDecryptOptions,
  PassphraseEncryptOptions,
} from './types.js'

const ARMOR_DASHES = Buffer.from('-----', 'latin1')

type MakeStanzas = (fileKey: Uint8Array, random: EncryptionRandomness) => Promise<Stanza[]> | Stanza[]

/** The start of a new file (header and payload nonce) and its payload key; the file key is wiped. */
async function beginFile(stanzas: MakeStanzas, random: EncryptionRandomness, signal: AbortSignal | undefined): Promise<{ prefix: Buffer; key: KeyObject }> {
  const fileKey = random.fileKey()
  try {
    const header = encodeHeader(await stanzas(fileKey, random), fileKey)
    throwIfAborted(signal)
    const nonce = random.payloadNonce()
    return { prefix: Buffer.concat([header, nonce]), key: payloadKey(fileKey, nonce) }
  } finally {
    fileKey.fill(0)
  }
}

/** Header, payload nonce, then the sealed chunks. */
async function* encryptWith(
  source: ByteSource,
  stanzas: MakeStanzas,
  options: AbortOptions,
  pickRandomness: () => EncryptionRandomness,
): AsyncGenerator<Uint8Array> {
  const { signal } = options
  throwIfAborted(signal)
  const random = pickRandomness()
  const reader = new ByteReader(source, signal)
  try {
    const { prefix, key } = await beginFile(stanzas, random, signal)
    yield prefix
    yield* sealPayload(reader, key, signal)
  } finally {
    await reader.close()
  }
}

/** The stanzas of `recipients` (checked when called, so that errors surface where encryption starts). */
function x25519Stanzas(recipients: readonly string[]): MakeStanzas {
  return (fileKey, random) => {
    if (!Array.isArray(recipients) || recipients.length === 0) {
      throw new InvalidArgumentError('encrypt needs at least one recipient')
    }
    const keys = recipients.map(recipientKey)
    return keys.map((key, index) => wrapX25519(fileKey, key, random.ephemeral(index)))
  }
}

/** Wraps the output in the ASCII armor when `options.armor` asks for it. */
function armored(output: AsyncGenerator<Uint8Array>, options: { armor?: boolean }): AsyncGenerator<Uint8Array> {
  return options.armor === true ? armor(output) : output
}

/**
 * Encrypts `source` to one or more `age1…` recipients, as a stream of age v1 bytes
 * that `age -d` (or any age implementation) decrypts with a matching identity.
 *
 * Memory stays bounded whatever the size: one 64 KiB chunk (plus one source piece)
 * is held at a time, and the source is pulled only as fast as the output is consumed.
 * Errors (an invalid recipient or seed, an abort, a failing source) are thrown by
 * the iteration, never by the call itself.
 *
 * With `options.seed` the output is deterministic (keyed convergent encryption):
 * read {@link EncryptOptions.seed} for what that reveals and how to pick the seed.
 */
export function encrypt(source: ByteSource, recipients: readonly string[], options: EncryptOptions = {}): AsyncGenerator<Uint8Array> {
  return armored(encryptWith(source, x25519Stanzas(recipients), options, () => randomnessFor(options.seed)), options)
}

/**
 * Encrypts a plaintext held in memory to `recipients` as one binary age file, left in the
 * pieces it was sealed into (the header, then each chunk's ciphertext and tag, as OpenSSL
 * returned them): the same bytes as {@link encrypt} (deterministic with the same seed),
 * without a stream. When `hash` is given, every byte of the file goes through it in order.
 */
export async function encryptInPieces(plaintext: Uint8Array, recipients: readonly string[], options: Omit<EncryptOptions, 'armor'>, hash?: Hash): Promise<Uint8Array[]> {
  const { signal } = options
  throwIfAborted(signal)
  const random = randomnessFor(options.seed)
  const { prefix, key } = await beginFile(x25519Stanzas(recipients), random, signal)
  hash?.update(prefix)
  return [prefix, ...sealPieces(plaintext, key, hash)]
}

/**
 * Encrypts `source` under a passphrase: one scrypt stanza, alone in its header as age
 * requires (`age -d` asks for the passphrase). Always randomized: a `seed` in the
 * options (possible from JavaScript) fails with `ERR_INVALID_ARGUMENT`.
 */
export function encryptWithPassphrase(
  source: ByteSource,
  passphrase: string,
  options: PassphraseEncryptOptions = {},
): AsyncGenerator<Uint8Array> {
  const workFactor = options.workFactor ?? DEFAULT_WORK_FACTOR
  return armored(
    encryptWith(
      source,
      async (fileKey) => [await wrapScrypt(fileKey, passphrase, workFactor)],
      options,
      () => {
        if ((options as { seed?: unknown }).seed !== undefined) {
          throw new InvalidArgumentError('seed is for X25519 recipients only: passphrase encryption is always randomized')
        }
        return randomnessFor(undefined)
      },
    ),
    options,
  )
}

/**
 * Detects the ASCII armor, without consuming anything: after optional whitespace,
 * the input starts with `-----` (a binary age file starts with `age-`).
 */
async function isArmored(reader: ByteReader): Promise<boolean> {
  let start = 0
  for (;;) {
    start = reader.findFrom(start, (b) => !isWhitespace(b))
    if (start >= 0) break
    start = reader.length
    if (start > MAX_ARMOR_WHITESPACE || !(await reader.pull())) return false
  }
  await reader.fill(start + ARMOR_DASHES.length)
  for (let i = 0; i < ARMOR_DASHES.length; i++) {
    if (start + i >= reader.length || reader.byteAt(start + i) !== ARMOR_DASHES[i]) return false
  }
  return true
}

/** Reads the header, opens it with `unwrap`, checks its MAC, then streams the verified payload. */
async function* decryptWith(
  source: ByteSource,
  prepare: () => (header: Header) => Promise<Uint8Array> | Uint8Array,
  options: DecryptOptions,
): AsyncGenerator<Uint8Array> {
  const { signal } = options
  throwIfAborted(signal)
  // Identities and options are checked before a byte of input is read.
  const limits = headerLimits(options)
  const unwrap = prepare()
  const outer = new ByteReader(source, signal)
  let inner: ByteReader | undefined
  try {
    let reader = outer
    if (await isArmored(outer)) {
      inner = new ByteReader(dearmor(outer))
      reader = inner
    }
    const header = await readHeader(reader, limits)
    checkScryptAlone(header.stanzas)
    const fileKey = await unwrap(header)
    throwIfAborted(signal)
    try {
      verifyHeaderMac(header, fileKey)
      if (!(await reader.fill(PAYLOAD_NONCE_SIZE))) throw new TruncatedError('the input ends before the payload nonce')
      const key = payloadKey(fileKey, reader.takeBytes(PAYLOAD_NONCE_SIZE))
      fileKey.fill(0)
      yield* openPayload(reader, key, signal)
    } finally {
      fileKey.fill(0)
    }
  } finally {
    await inner?.close()
    await outer.close()
  }
}

/**
 * Decrypts an age v1 file (binary or ASCII-armored) with one or more
 * `AGE-SECRET-KEY-1…` identities. Each chunk is yielded only after its tag verifies;
 * every failure is a typed error thrown by the iteration, never a clean end.
 *
 * The header is bounded before any key is tried: at most `options.maxStanzas`
 * stanzas (default 64, else `ERR_TOO_MANY_STANZAS`) and `options.maxHeaderBytes`
 * bytes (default 1 MiB, else `ERR_HEADER_TOO_LARGE`).
 */
export function decrypt(source: ByteSource, identities: readonly string[], options: DecryptOptions = {}): AsyncGenerator<Uint8Array> {
  return decryptWith(
    source,
    () => {
      const parsed = parseIdentities(identities)
      return (header) => {
        const fileKey = unwrapX25519(header.stanzas, parsed)
        if (fileKey === undefined) throw noMatch('identity')
        return fileKey
      }
    },
    options,
  )
}

function parseIdentities(identities: readonly string[]): X25519Identity[] {
  if (!Array.isArray(identities) || identities.length === 0) {
    throw new InvalidArgumentError('decrypt needs at least one identity')
  }
  return identities.map(parseIdentity)
}

/** Decrypts a passphrase-encrypted age file; refuses scrypt work factors above `options.maxWorkFactor`. */
export function decryptWithPassphrase(
  source: ByteSource,
  passphrase: string,
  options: PassphraseDecryptOptions = {},
): AsyncGenerator<Uint8Array> {
  const maxWorkFactor = options.maxWorkFactor ?? DEFAULT_MAX_WORK_FACTOR
  return decryptWith(
    source,
    () => {
      checkScryptOptions(passphrase, maxWorkFactor)
      return async (header) => {
        const fileKey = await unwrapScrypt(header.stanzas, passphrase, maxWorkFactor)
        if (fileKey === undefined) throw noMatch('passphrase')
        return fileKey
      }
    },
    options,
  )
}
