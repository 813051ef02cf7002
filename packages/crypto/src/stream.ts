// The age payload: STREAM with ChaCha20-Poly1305 over 64 KiB chunks, nonce = 11-byte counter ‖ last flag.
import { createCipheriv, createDecipheriv, createSecretKey, type Hash, type KeyObject } from 'node:crypto'
import { ChunkAuthError, EmptyLastChunkError, TrailingDataError, TruncatedError } from './errors.js'
import { hkdfSha256 } from './hkdf.js'
import { joinViews, throwIfAborted, type ByteReader } from './reader.js'

export const CHUNK_SIZE = 64 * 1024
export const TAG_SIZE = 16
export const ENCRYPTED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE
export const PAYLOAD_NONCE_SIZE = 16

/** The payload key: HKDF-SHA256(file key, payload nonce, "payload"). */
export function payloadKey(fileKey: Uint8Array, nonce: Uint8Array): KeyObject {
  const key = hkdfSha256(fileKey, nonce, 'payload', 32)
  try {
    return createSecretKey(key)
  } finally {
    key.fill(0)
  }
}

/** The 12-byte chunk nonce, advanced in place. */
class ChunkNonce {
  readonly bytes = Buffer.alloc(12)
  /** Index of the current chunk, for messages. */
  index = 0

  setLast(last: boolean): Buffer {
    this.bytes[11] = last ? 1 : 0
    return this.bytes
  }

  next(): void {
    this.index++
    for (let i = 10; i >= 0; i--) {
      const byte = (this.bytes[i]! + 1) & 0xff
      this.bytes[i] = byte
      if (byte !== 0) return
    }
    // 2^88 chunks: unreachable in practice, and wrapping would reuse a nonce.
    throw new RangeError('STREAM counter overflow')
  }
}

/**
 * Encrypts the reader's bytes as STREAM chunks. A chunk is sealed as last only
 * once the source has ended, so up to 64 KiB + one piece is held back.
 */
export async function* sealPayload(reader: ByteReader, key: KeyObject, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  const nonce = new ChunkNonce()
  for (;;) {
    const more = await reader.fill(CHUNK_SIZE + 1)
    throwIfAborted(signal)
    const size = more ? CHUNK_SIZE : reader.length
    const cipher = createCipheriv('chacha20-poly1305', key, nonce.setLast(!more), { authTagLength: TAG_SIZE })
    const views = reader.take(size)
    for (const view of views) yield cipher.update(view)
    cipher.final()
    yield cipher.getAuthTag()
    if (!more) return
    nonce.next()
  }
}

/**
 * Seals a whole in-memory plaintext as STREAM chunks, with the same chunking and nonces as
 * {@link sealPayload}, and returns them as they come out of OpenSSL: each chunk's ciphertext, then
 * its tag, nothing copied. Feeds each piece to `hash` while it is still in cache.
 */
export function sealPieces(plaintext: Uint8Array, key: KeyObject, hash?: Hash): Uint8Array[] {
  const nonce = new ChunkNonce()
  const size = plaintext.length
  const pieces: Uint8Array[] = []
  let at = 0
  for (;;) {
    const end = Math.min(at + CHUNK_SIZE, size)
    const last = end === size
    const cipher = createCipheriv('chacha20-poly1305', key, nonce.setLast(last), { authTagLength: TAG_SIZE })
    if (end > at) {
      const body = cipher.update(plaintext.subarray(at, end))
      hash?.update(body)
      pieces.push(body)
    }
    cipher.final()
    const tag = cipher.getAuthTag()
    hash?.update(tag)
    pieces.push(tag)
    if (last) return pieces
    at = end
    nonce.next()
  }
}

/** Opens one chunk: returns its plaintext pieces, or `undefined` when the tag does not verify. */
function openChunk(key: KeyObject, nonce: Buffer, views: readonly Uint8Array[], size: number): Buffer[] | undefined {
  const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_SIZE })
  const bodySize = size - TAG_SIZE
  const out: Buffer[] = []
  let offset = 0
  const tagParts: Uint8Array[] = []
  for (const view of views) {
    const end = offset + view.length
    if (offset < bodySize) out.push(decipher.update(end <= bodySize ? view : view.subarray(0, bodySize - offset)))
    if (end > bodySize) tagParts.push(view.subarray(Math.max(0, bodySize - offset)))
    offset = end
  }
  decipher.setAuthTag(tagParts.length === 1 ? tagParts[0]! : joinViews(tagParts, TAG_SIZE))
  try {
    decipher.final()
    return out
  } catch {
    return undefined
  }
}

/**
 * Decrypts STREAM chunks off the reader, yielding each chunk only after its tag
 * verifies. Reads one byte past each full chunk to know whether it is the last.
 */
export async function* openPayload(reader: ByteReader, key: KeyObject, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  const nonce = new ChunkNonce()
  for (;;) {
    const more = await reader.fill(ENCRYPTED_CHUNK_SIZE + 1)
    throwIfAborted(signal)
    const at = `chunk ${nonce.index}`
    if (more) {
      const views = reader.take(ENCRYPTED_CHUNK_SIZE)
      const plain = openChunk(key, nonce.setLast(false), views, ENCRYPTED_CHUNK_SIZE)
      if (plain === undefined) {
        const last = openChunk(key, nonce.setLast(true), views, ENCRYPTED_CHUNK_SIZE)
        if (last !== undefined) {
          // An authentic last chunk: released like any verified chunk, then the stream fails.
          for (const piece of last) yield piece
          throw new TrailingDataError(`data follows the last chunk (${at})`)
        }
        throw new ChunkAuthError(`${at} failed authentication: altered, reordered, dropped or duplicated`)
      }
      for (const piece of plain) yield piece
      nonce.next()
      continue
    }
    const size = reader.length
    if (size === 0) {
      throw new TruncatedError(
        nonce.index === 0 ? 'the payload has no chunk' : `the input ends after ${nonce.index} full chunks without a last chunk`,
      )
    }
    if (size < TAG_SIZE) throw new TruncatedError(`the input ends inside ${at}`)
    const views = reader.take(size)
    const plain = openChunk(key, nonce.setLast(true), views, size)
    if (plain !== undefined) {
      if (size === TAG_SIZE && nonce.index > 0) throw new EmptyLastChunkError()
      for (const piece of plain) yield piece
      return
    }
    // Authentic but not marked last: the writer stopped before its last chunk.
    const notLast = openChunk(key, nonce.setLast(false), views, size)
    if (notLast !== undefined) {
      if (size !== ENCRYPTED_CHUNK_SIZE) {
        // Only full chunks may be non-last: this one is released neither way.
        throw new TruncatedError(`${at} is short and not marked last: the stream ends without a last chunk`)
      }
      for (const piece of notLast) yield piece
      throw new TruncatedError(`the input ends after ${nonce.index + 1} full chunks without a last chunk`)
    }
    throw new ChunkAuthError(`${at} failed authentication: altered, or the input was cut inside it`)
  }
}
