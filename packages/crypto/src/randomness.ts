// What the encryptor draws: fresh randomness, or values derived from a caller's seed (deterministic encryption).
import { randomBytes } from 'node:crypto'
import { InvalidArgumentError } from './errors.js'
import { hkdfSha256 } from './hkdf.js'
import { generateX25519, x25519FromRaw, type X25519KeyPair } from './keys.js'
import { FILE_KEY_BYTES } from './stanzas.js'
import { PAYLOAD_NONCE_SIZE } from './stream.js'

/** Length in bytes of `EncryptOptions.seed`: 32. */
export const SEED_BYTES = 32

// HKDF-SHA256 over the seed: one salt for the scheme, one `info` per value. Changing any of
// these changes every deterministic ciphertext (and so every content address built on it).
const SEED_SALT = Buffer.from('dcas/crypto deterministic age v1', 'latin1')
const FILE_KEY_INFO = 'file key'
const PAYLOAD_NONCE_INFO = 'payload nonce'
const EPHEMERAL_INFO = 'X25519 ephemeral secret '

/** The values an age encryption needs that are random in age. */
export interface EncryptionRandomness {
  /** The 16-byte file key (the caller wipes it). */
  fileKey(): Buffer
  /** The 16-byte payload nonce. */
  payloadNonce(): Buffer
  /** The ephemeral X25519 key pair of the stanza for recipient number `index`. */
  ephemeral(index: number): X25519KeyPair
}

const fresh: EncryptionRandomness = {
  fileKey: () => randomBytes(FILE_KEY_BYTES),
  payloadNonce: () => randomBytes(PAYLOAD_NONCE_SIZE),
  ephemeral: () => generateX25519(),
}

/** Checks a seed: exactly {@link SEED_BYTES} bytes in a `Uint8Array`. */
export function checkSeed(seed: unknown): asserts seed is Uint8Array {
  if (!(seed instanceof Uint8Array) || seed.length !== SEED_BYTES) {
    throw new InvalidArgumentError(`seed must be a Uint8Array of exactly ${SEED_BYTES} bytes`)
  }
}

function derive(seed: Uint8Array, info: string, length: number): Buffer {
  return hkdfSha256(seed, SEED_SALT, info, length)
}

/** The values derived from `seed`, or fresh randomness when there is none. */
export function randomnessFor(seed: Uint8Array | undefined): EncryptionRandomness {
  if (seed === undefined) return fresh
  checkSeed(seed)
  // Copied: the caller may reuse or wipe its array while the stream runs.
  const own = Uint8Array.from(seed)
  return {
    fileKey: () => derive(own, FILE_KEY_INFO, FILE_KEY_BYTES),
    payloadNonce: () => derive(own, PAYLOAD_NONCE_INFO, PAYLOAD_NONCE_SIZE),
    ephemeral: (index) => {
      const secret = derive(own, `${EPHEMERAL_INFO}${index}`, 32)
      try {
        return x25519FromRaw(secret)
      } finally {
        secret.fill(0)
      }
    },
  }
}
