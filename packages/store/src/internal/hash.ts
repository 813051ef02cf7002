import { createHash } from 'node:crypto'
import { IntegrityError } from '../errors.js'
import type { BlobInfo, ByteSource } from '../types.js'
import { chunksOf } from './source.js'

/** Lowercase hex SHA-256 of `bytes`. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/**
 * Streams `source` into `sink` while hashing it: the id is computed on the way, never by
 * buffering the blob. Each chunk's hashing overlaps the sink's (asynchronous) write of it.
 */
export async function hashThrough(
  source: ByteSource,
  signal: AbortSignal | undefined,
  sink: (chunk: Uint8Array) => Promise<void> | void,
): Promise<BlobInfo> {
  const hash = createHash('sha256')
  let size = 0
  for await (const chunk of chunksOf(source, signal)) {
    if (chunk.byteLength === 0) continue
    const written = sink(chunk)
    hash.update(chunk)
    size += chunk.byteLength
    await written
  }
  return { id: hash.digest('hex'), size }
}

/** Throws `ERR_INTEGRITY` when bytes that hash to `actual` were expected to hash to `expected`. */
export function assertExpected(expected: string | undefined, actual: string): void {
  if (expected !== undefined && expected !== actual) {
    throw new IntegrityError(`bytes hash to ${actual}, not to the expected id ${expected}; nothing was kept`)
  }
}
