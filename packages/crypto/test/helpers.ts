import { Buffer } from 'node:buffer'

/** Joins every piece of a stream (tests only: small inputs). */
export async function collect(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const part of stream) parts.push(part)
  return Buffer.concat(parts)
}

/** Runs a stream to its end: the bytes it released, and the `code` of the error it failed with, or `'ok'`. */
export async function outcome(stream: AsyncIterable<Uint8Array>): Promise<{ code: string; released: Buffer }> {
  const released: Uint8Array[] = []
  try {
    for await (const piece of stream) released.push(piece)
    return { code: 'ok', released: Buffer.concat(released) }
  } catch (err) {
    return { code: String((err as { code?: unknown }).code ?? err), released: Buffer.concat(released) }
  }
}

/** Runs a stream to its end and returns the `code` of the error it fails with, or `'ok'`. */
export async function failureCode(stream: AsyncIterable<Uint8Array>): Promise<string> {
  try {
    for await (const _ of stream);
    return 'ok'
  } catch (err) {
    return String((err as { code?: unknown }).code ?? err)
  }
}

/** Cuts `bytes` into pieces of the given sizes (cycled). */
export function* pieces(bytes: Uint8Array, sizes: readonly number[]): Generator<Uint8Array> {
  let offset = 0
  for (let i = 0; offset < bytes.length; i++) {
    const size = Math.max(1, sizes[i % sizes.length]!)
    yield bytes.subarray(offset, offset + size)
    offset += size
  }
}

/** Deterministic, non-repeating test bytes. */
export function testBytes(length: number, seed = 1): Buffer {
  const out = Buffer.alloc(length)
  let x = seed >>> 0 || 1
  for (let i = 0; i < length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

export const CHUNK = 64 * 1024
export const ENCRYPTED_CHUNK = CHUNK + 16

/** Splits one of our age files into header (with the MAC line), payload nonce and encrypted chunks. */
export function splitFile(file: Uint8Array): { header: Buffer; nonce: Buffer; chunks: Buffer[] } {
  const buf = Buffer.from(file)
  const macLine = buf.indexOf('\n--- ') + 1
  const headerEnd = buf.indexOf('\n', macLine) + 1
  const chunks: Buffer[] = []
  for (let o = headerEnd + 16; o < buf.length; o += ENCRYPTED_CHUNK) chunks.push(buf.subarray(o, o + ENCRYPTED_CHUNK))
  return { header: buf.subarray(0, headerEnd), nonce: buf.subarray(headerEnd, headerEnd + 16), chunks }
}
