// Recipient stanzas: X25519 and scrypt, wrapping and unwrapping the 16-byte file key.
import { createCipheriv, createDecipheriv, diffieHellman, randomBytes, scrypt } from 'node:crypto'
import { decodeBase64, encodeBase64 } from './base64.js'
import { FormatError, InvalidArgumentError, NoMatchingIdentityError, WorkFactorError } from './errors.js'
import type { Stanza } from './header.js'
import { hkdfSha256 } from './hkdf.js'
import { publicKeyFromRaw, type RecipientKey, type X25519Identity, type X25519KeyPair } from './keys.js'

export const FILE_KEY_BYTES = 16
const WRAPPED_KEY_BYTES = FILE_KEY_BYTES + 16
const ZERO_NONCE = new Uint8Array(12)
const X25519_INFO = 'age-encryption.org/v1/X25519'
const SCRYPT_SALT_LABEL = Buffer.from('age-encryption.org/v1/scrypt', 'latin1')
const SCRYPT_SALT_BYTES = 16

/** age's default scrypt work factor for encryption (log2 N): about a second on a laptop. */
export const DEFAULT_WORK_FACTOR = 18
/** Default cap on the scrypt work factor a file may ask for on decryption: 2^20 × 1 KiB = 1 GiB of memory. */
export const DEFAULT_MAX_WORK_FACTOR = 20
/** Work factors beyond this are refused outright: Node's scrypt and memory could not follow. */
export const WORK_FACTOR_LIMIT = 30

/** Seals the file key under a 32-byte key with the all-zero nonce (each wrap key is used once). */
function wrap(key: Uint8Array, fileKey: Uint8Array): Buffer {
  const cipher = createCipheriv('chacha20-poly1305', key, ZERO_NONCE, { authTagLength: 16 })
  return Buffer.concat([cipher.update(fileKey), cipher.final(), cipher.getAuthTag()])
}

/** Opens a wrapped file key, or returns `undefined` when the tag does not verify. */
function unwrap(key: Uint8Array, body: Uint8Array): Uint8Array | undefined {
  const decipher = createDecipheriv('chacha20-poly1305', key, ZERO_NONCE, { authTagLength: 16 })
  decipher.setAuthTag(body.subarray(FILE_KEY_BYTES))
  const fileKey = decipher.update(body.subarray(0, FILE_KEY_BYTES))
  try {
    decipher.final()
    return fileKey
  } catch {
    return undefined
  }
}

function x25519WrapKey(shared: Uint8Array, share: Uint8Array, recipient: Uint8Array): Buffer {
  return hkdfSha256(shared, Buffer.concat([share, recipient]), X25519_INFO, 32)
}

/** An X25519 stanza wrapping `fileKey` to the recipient's public key, with the share `ephemeral`. */
export function wrapX25519(fileKey: Uint8Array, recipient: RecipientKey, ephemeral: X25519KeyPair): Stanza {
  const shared = diffieHellman({ privateKey: ephemeral.privateKey, publicKey: recipient.key })
  if (shared.every((b) => b === 0)) throw new FormatError('the recipient is a low-order point')
  const body = wrap(x25519WrapKey(shared, ephemeral.publicKey, recipient.raw), fileKey)
  return { type: 'X25519', args: [encodeBase64(ephemeral.publicKey)], body }
}

/** Checks the shape of every X25519 stanza, so a malformed one fails whichever identity is tried. */
export function checkX25519Stanzas(stanzas: readonly Stanza[]): void {
  for (const stanza of stanzas) {
    if (stanza.type !== 'X25519') continue
    if (stanza.args.length !== 1) throw new FormatError('an X25519 stanza must have exactly one argument')
    if (decodeBase64(stanza.args[0]!)?.length !== 32) throw new FormatError('an X25519 share must be 32 bytes of canonical base64')
    if (stanza.body.length !== WRAPPED_KEY_BYTES) throw new FormatError('an X25519 stanza body must be 32 bytes')
  }
}

/** Tries every identity on every X25519 stanza; returns the file key or `undefined`. */
export function unwrapX25519(stanzas: readonly Stanza[], identities: readonly X25519Identity[]): Uint8Array | undefined {
  checkX25519Stanzas(stanzas)
  for (const stanza of stanzas) {
    if (stanza.type !== 'X25519') continue
    const share = decodeBase64(stanza.args[0]!)!
    let publicKey
    try {
      publicKey = publicKeyFromRaw(share)
    } catch (cause) {
      throw new FormatError('an X25519 share is not a valid point', { cause })
    }
    for (const identity of identities) {
      let shared: Buffer
      try {
        shared = diffieHellman({ privateKey: identity.privateKey, publicKey })
      } catch (cause) {
        // OpenSSL refuses an all-zero shared secret: the share is a low-order point.
        throw new FormatError('an X25519 share is a low-order point', { cause })
      }
      if (shared.every((b) => b === 0)) throw new FormatError('an X25519 share is a low-order point')
      const fileKey = unwrap(x25519WrapKey(shared, share, identity.publicKey), stanza.body)
      if (fileKey !== undefined) return fileKey
    }
  }
  return undefined
}

function checkWorkFactor(workFactor: number, what: string): void {
  if (!Number.isInteger(workFactor) || workFactor < 1 || workFactor > WORK_FACTOR_LIMIT) {
    throw new InvalidArgumentError(`${what} must be an integer from 1 to ${WORK_FACTOR_LIMIT}`)
  }
}

function deriveScryptKey(passphrase: string, salt: Uint8Array, workFactor: number): Promise<Buffer> {
  const N = 2 ** workFactor
  const r = 8
  return new Promise((resolve, reject) => {
    // maxmem: scrypt needs 128·N·r bytes; leave room rather than fail just under the limit.
    scrypt(passphrase, Buffer.concat([SCRYPT_SALT_LABEL, salt]), 32, { N, r, p: 1, maxmem: 129 * N * r + 1024 * 1024 }, (err, key) =>
      err === null ? resolve(key) : reject(err),
    )
  })
}

function checkPassphrase(passphrase: string): void {
  if (typeof passphrase !== 'string' || passphrase.length === 0) {
    throw new InvalidArgumentError('the passphrase must be a non-empty string')
  }
}

/** Checks a passphrase and a work factor (or its cap) before any input is read. */
export function checkScryptOptions(passphrase: string, workFactor: number): void {
  checkPassphrase(passphrase)
  checkWorkFactor(workFactor, 'the work factor')
}

/** An scrypt stanza wrapping `fileKey` under `passphrase`. */
export async function wrapScrypt(fileKey: Uint8Array, passphrase: string, workFactor: number): Promise<Stanza> {
  checkPassphrase(passphrase)
  checkWorkFactor(workFactor, 'workFactor')
  const salt = randomBytes(SCRYPT_SALT_BYTES)
  const key = await deriveScryptKey(passphrase, salt, workFactor)
  return { type: 'scrypt', args: [encodeBase64(salt), String(workFactor)], body: wrap(key, fileKey) }
}

/** Finds the scrypt stanza and opens it with the passphrase; returns the file key or `undefined`. */
export async function unwrapScrypt(
  stanzas: readonly Stanza[],
  passphrase: string,
  maxWorkFactor: number,
): Promise<Uint8Array | undefined> {
  checkPassphrase(passphrase)
  checkWorkFactor(maxWorkFactor, 'maxWorkFactor')
  const stanza = stanzas.find((s) => s.type === 'scrypt')
  if (stanza === undefined) return undefined
  if (stanza.args.length !== 2) throw new FormatError('an scrypt stanza must have exactly two arguments')
  const salt = decodeBase64(stanza.args[0]!)
  if (salt?.length !== SCRYPT_SALT_BYTES) throw new FormatError('an scrypt salt must be 16 bytes of canonical base64')
  const factor = stanza.args[1]!
  if (!/^[1-9][0-9]*$/.test(factor)) throw new FormatError('an scrypt work factor must be a decimal integer without leading zeros')
  const workFactor = Number(factor)
  if (workFactor > maxWorkFactor) {
    throw new WorkFactorError(`the file asks for scrypt work factor ${factor.slice(0, 20)}, above the maximum ${maxWorkFactor}`)
  }
  if (stanza.body.length !== WRAPPED_KEY_BYTES) throw new FormatError('an scrypt stanza body must be 32 bytes')
  return unwrap(await deriveScryptKey(passphrase, salt, workFactor), stanza.body)
}

/** age requires an scrypt stanza to be the only stanza of its header. */
export function checkScryptAlone(stanzas: readonly Stanza[]): void {
  if (stanzas.length > 1 && stanzas.some((s) => s.type === 'scrypt')) {
    throw new FormatError('an scrypt stanza must be the only stanza of the header')
  }
}

/** Raised when nothing opened the header. */
export function noMatch(kind: 'identity' | 'passphrase'): NoMatchingIdentityError {
  return new NoMatchingIdentityError(
    kind === 'identity' ? 'no identity matches any recipient of the file' : 'the passphrase does not open the file',
  )
}
