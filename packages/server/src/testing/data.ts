import { createCipheriv, createHash } from 'node:crypto'

const PIECE = 256 * 1024
/** What the keystream is XORed with: read only, so every call shares it. */
const ZEROS = Buffer.alloc(PIECE)

/**
 * Deterministic pseudo-random bytes: `size` bytes drawn from `seed` (AES-256-CTR over zeros),
 * streamed in 256 KiB pieces. The same seed and size always give the same bytes, so a test or
 * benchmark can tell what it stored without keeping it.
 */
export async function* generateData(size: number, seed: string | number): AsyncGenerator<Uint8Array> {
  const key = createHash('sha256').update(`dcas test data ${seed}`).digest()
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16))
  for (let left = size; left > 0; left -= PIECE) yield cipher.update(left >= PIECE ? ZEROS : ZEROS.subarray(0, left))
  await Promise.resolve()
}

/** SHA-256 (hex) of {@link generateData}`(size, seed)`, computed while streaming. */
export async function dataDigest(size: number, seed: string | number): Promise<string> {
  const hash = createHash('sha256')
  for await (const piece of generateData(size, seed)) hash.update(piece)
  return hash.digest('hex')
}

/** Size and SHA-256 of a byte stream, consumed without keeping it. */
export async function digestOf(source: AsyncIterable<Uint8Array | string>): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256')
  let size = 0
  for await (const piece of source) {
    const bytes = typeof piece === 'string' ? Buffer.from(piece) : piece
    hash.update(bytes)
    size += bytes.length
  }
  return { size, sha256: hash.digest('hex') }
}
