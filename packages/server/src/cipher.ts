// Encryption of the owner's blobs for its peers: each blob is encrypted deterministically (the same
// plaintext and recipients always give the same ciphertext, so peers deduplicate), and whatever comes
// back is decrypted with the owner's identity and checked against the id it was asked for.
import { decrypt, decryptBytes, encryptBlobPieces } from '@dcas/crypto'
import { hashBlob, type HashedBlob } from '@dcas/store'
import { UnavailableError } from './errors.js'
import { asBuffer, type LocalStore } from './local.js'
import { sha256Hex } from './manifest.js'
import { seedOf, type OwnerKeys } from './secrets.js'

/** A recipient list and its id (the SHA-256 of the list). */
export interface RecipientSet {
  recipients: string[]
  recipientsId: string
}

/** The id of a recipient list. */
export const recipientsIdOf = (recipients: string[]): string => sha256Hex(Buffer.from(recipients.join('\n')))

/** The largest age ciphertext of `plainSize` bytes: a 16-byte tag per 64 KiB record, the nonce, and room for the header. */
export function maxCipherBytes(plainSize: number): number {
  return plainSize + 16 * (Math.ceil(plainSize / 65536) + 1) + 16 + 16 * 1024
}

/** Encrypts and decrypts the owner's blobs. */
export class BlobCipher {
  readonly #keys: OwnerKeys
  readonly #local: LocalStore
  readonly #current: RecipientSet

  constructor(keys: OwnerKeys, local: LocalStore, recoveryRecipients: string[]) {
    this.#keys = keys
    this.#local = local
    const recipients = [keys.recipient, ...recoveryRecipients]
    this.#current = { recipients, recipientsId: recipientsIdOf(recipients) }
  }

  /** What new blobs are encrypted to: the owner's recipient and the recovery recipients. */
  get current(): RecipientSet {
    return this.#current
  }

  /** The ciphertext of a blob, in the pieces it was sealed into (never joined: it is only sent), and its cipherId (hashed while sealing). */
  async encrypt(plain: Uint8Array, plainId: string, set: RecipientSet = this.#current): Promise<{ cipher: Uint8Array[]; cipherId: string }> {
    const { pieces, sha256 } = await encryptBlobPieces(plain, set.recipients, { seed: seedOf(this.#keys, plainId, set.recipientsId) })
    return { cipher: pieces, cipherId: sha256 }
  }

  /**
   * Decrypts a blob (one array, or the pieces it arrived in) with the owner's identity; the plaintext must hash
   * to `plainId`. It stays in the pieces each age record opened to (nothing joins them), and the one hash of
   * them serves the check and, for the local store, the write-back.
   */
  async decrypt(cipher: Uint8Array | Uint8Array[], plainId: string): Promise<HashedBlob> {
    const pieces: Uint8Array[] = []
    for await (const piece of decrypt(cipher, [this.#keys.identity])) pieces.push(piece)
    const plain = hashBlob(pieces)
    if (plain.id !== plainId) throw new UnavailableError(`decrypted bytes do not hash to ${plainId}`)
    return plain
  }

  /** Decrypts bytes with the owner's identity, checking nothing else. */
  async open(cipher: Uint8Array | Uint8Array[]): Promise<Buffer> {
    return asBuffer(await decryptBytes(cipher, [this.#keys.identity]))
  }

  /** The ciphertext of a local plaintext blob, re-created deterministically and checked against `cipherId`. */
  async cipherOf(plainId: string, cipherId: string, recipientsId: string): Promise<Uint8Array[]> {
    const recipients = this.#local.tables.recipientSets.get(recipientsId)
    if (recipients === undefined) throw new UnavailableError(`unknown recipient set ${recipientsId}`)
    const { cipher, cipherId: got } = await this.encrypt(await this.#local.read(plainId), plainId, { recipients, recipientsId })
    if (got !== cipherId) throw new UnavailableError(`re-encrypting ${plainId} gave ${got}, not ${cipherId}`)
    return cipher
  }
}
