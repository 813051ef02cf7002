// X25519 identities (`AGE-SECRET-KEY-1…`) and recipients (`age1…`) as raw keys and node:crypto KeyObjects.
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto'
import { bech32Decode, bech32Encode } from './bech32.js'
import { InvalidIdentityError, InvalidRecipientError, UnsupportedError } from './errors.js'

const IDENTITY_HRP = 'AGE-SECRET-KEY-'
const RECIPIENT_HRP = 'age'
// Placeholder public half for JWK private-key import: Node requires `x` but derives the key from `d` alone.
const UNUSED_X = 'A'.repeat(43)

/** An X25519 identity ready to unwrap stanzas; `publicKey` (raw) is part of the HKDF salt. */
export type X25519Identity = X25519KeyPair

function base64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url')
}

/**
 * Makes a private KeyObject from a raw 32-byte X25519 scalar. JWK import, not
 * PKCS#8 DER: OpenSSL 3's DER decoders take ~1 ms a key, JWK ~0.1 ms.
 */
export function privateKeyFromRaw(raw: Uint8Array): KeyObject {
  return createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: base64url(raw), x: UNUSED_X }, format: 'jwk' })
}

/** Makes a public KeyObject from a raw 32-byte X25519 point. */
export function publicKeyFromRaw(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: base64url(raw) }, format: 'jwk' })
}

/** The raw 32 bytes of an X25519 public KeyObject. */
export function rawPublicKey(key: KeyObject): Uint8Array {
  const { x } = key.export({ format: 'jwk' })
  return new Uint8Array(Buffer.from(x!, 'base64url'))
}

/** Parses an `AGE-SECRET-KEY-1…` string. Errors never repeat the input: it is a secret. */
export function parseIdentity(identity: string): X25519Identity {
  if (typeof identity !== 'string') throw new InvalidIdentityError('an identity must be a string')
  if (identity.startsWith('AGE-SECRET-KEY-PQ-1')) {
    throw new UnsupportedError('post-quantum hybrid identities (AGE-SECRET-KEY-PQ-1…) are not supported')
  }
  if (identity.startsWith('AGE-PLUGIN-')) throw new UnsupportedError('age plugin identities are not supported')
  let decoded: { hrp: string; data: Uint8Array }
  try {
    decoded = bech32Decode(identity)
  } catch (cause) {
    throw new InvalidIdentityError('malformed identity: not valid Bech32', { cause })
  }
  if (decoded.hrp !== IDENTITY_HRP) throw new InvalidIdentityError('malformed identity: expected AGE-SECRET-KEY-1…')
  if (decoded.data.length !== 32) throw new InvalidIdentityError('malformed identity: the key is not 32 bytes')
  try {
    return x25519FromRaw(decoded.data)
  } catch (cause) {
    throw new InvalidIdentityError('malformed identity: not an X25519 key', { cause })
  } finally {
    decoded.data.fill(0)
  }
}

/** Parses an `age1…` recipient into its raw 32-byte X25519 public key. */
export function parseRecipient(recipient: string): Uint8Array {
  if (typeof recipient !== 'string') throw new InvalidRecipientError('a recipient must be a string')
  if (recipient.startsWith('age1pq1')) {
    throw new UnsupportedError('post-quantum hybrid recipients (age1pq1…) are not supported')
  }
  if (recipient.startsWith('ssh-')) throw new UnsupportedError('SSH recipients are not supported')
  let decoded: { hrp: string; data: Uint8Array }
  try {
    decoded = bech32Decode(recipient)
  } catch (cause) {
    throw new InvalidRecipientError(`malformed recipient ${JSON.stringify(recipient.slice(0, 100))}: not valid Bech32`, {
      cause,
    })
  }
  if (decoded.hrp.startsWith('age1')) throw new UnsupportedError('age plugin recipients are not supported')
  if (decoded.hrp !== RECIPIENT_HRP || decoded.data.length !== 32) {
    throw new InvalidRecipientError(`malformed recipient ${JSON.stringify(recipient.slice(0, 100))}: expected age1…`)
  }
  return decoded.data
}

/** A parsed recipient: its raw public key and the KeyObject of it. Both are shared: never mutate `raw`. */
export interface RecipientKey {
  readonly raw: Uint8Array
  readonly key: KeyObject
}

/** Recipients parsed lately, by their `age1…` string: an encryption per blob need not decode and import the same key each time. */
const recipientKeys = new Map<string, RecipientKey>()
const RECIPIENT_KEYS_KEPT = 256

/** {@link parseRecipient} and the KeyObject of the result, remembered for the next call with the same string. */
export function recipientKey(recipient: string): RecipientKey {
  let known = recipientKeys.get(recipient)
  if (known === undefined) {
    const raw = parseRecipient(recipient)
    known = { raw, key: publicKeyFromRaw(raw) }
    if (recipientKeys.size >= RECIPIENT_KEYS_KEPT) recipientKeys.clear()
    recipientKeys.set(recipient, known)
  }
  return known
}

/** An X25519 key pair: the private half as a KeyObject, the public half as raw bytes. */
export interface X25519KeyPair {
  readonly privateKey: KeyObject
  readonly publicKey: Uint8Array
}

/** A new random X25519 key pair, for ephemeral shares. */
export function generateX25519(): X25519KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519')
  return { privateKey, publicKey: rawPublicKey(publicKey) }
}

/** The X25519 key pair of a raw 32-byte secret scalar. */
export function x25519FromRaw(secret: Uint8Array): X25519KeyPair {
  const privateKey = privateKeyFromRaw(secret)
  return { privateKey, publicKey: rawPublicKey(createPublicKey(privateKey)) }
}

/** A new `AGE-SECRET-KEY-1…` string. */
export function newIdentityString(): string {
  const raw = randomBytes(32)
  try {
    return bech32Encode(IDENTITY_HRP, raw)
  } finally {
    raw.fill(0)
  }
}

/** The `age1…` recipient of an identity string. */
export function recipientOf(identity: string): string {
  return bech32Encode(RECIPIENT_HRP, parseIdentity(identity).publicKey)
}
