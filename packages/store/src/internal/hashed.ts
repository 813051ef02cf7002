// Bytes in memory hashed once (hashBlob), and the one function that turns any put source into hashed pieces.
import { createHash } from 'node:crypto'
import { InvalidArgumentError } from '../errors.js'
import type { BlobSource, HashedBlob } from '../types.js'
import { chunksOf } from './source.js'

/** The blobs made here: a put trusts an id only from one of these. */
const made = new WeakSet<HashedBlob>()

/**
 * Hashes bytes held in memory (one array, or the pieces of one blob) once, for a put that
 * must not hash them again: `put(hashBlob(bytes))` stores them under `id`, and the id also
 * names them for the caller (a chunk id, a cipher id). The bytes must stay unchanged until
 * the put has resolved.
 *
 * @example
 * ```ts
 * const chunk = hashBlob(bytes)
 * if (!(await store.has(chunk.id))) await store.put(chunk)
 * ```
 */
export function hashBlob(bytes: Uint8Array | readonly Uint8Array[]): HashedBlob {
  const pieces = bytes instanceof Uint8Array ? [bytes] : Array.isArray(bytes) ? [...(bytes as readonly unknown[])] : undefined
  if (pieces === undefined || !pieces.every((piece) => piece instanceof Uint8Array)) {
    throw new InvalidArgumentError('hashBlob takes a Uint8Array or an array of Uint8Arrays')
  }
  const hash = createHash('sha256')
  let size = 0
  for (const piece of pieces) {
    hash.update(piece)
    size += piece.byteLength
  }
  const blob: HashedBlob = Object.freeze({ id: hash.digest('hex'), size, pieces: Object.freeze(pieces) })
  made.add(blob)
  return blob
}

/** Whether `source` came from {@link hashBlob}. */
export function isHashedBlob(source: unknown): source is HashedBlob {
  return typeof source === 'object' && source !== null && made.has(source as HashedBlob)
}

/** Rejects an object shaped like a {@link HashedBlob} that `hashBlob` did not make: its id would be taken on trust. */
export function assertSource(source: unknown): asserts source is BlobSource {
  if (isHashedBlob(source)) return
  if (typeof source === 'object' && source !== null && 'id' in source && 'pieces' in source) {
    throw new InvalidArgumentError('a hashed blob must come from hashBlob(): its id is not taken on trust')
  }
}

/**
 * Passes every piece of `source` to `sink` and returns the blob's id and size: a hashed blob's
 * own id, else the SHA-256 computed while the pieces go by (never buffering the blob).
 */
export async function hashPieces(
  source: BlobSource,
  signal: AbortSignal | undefined,
  sink: (piece: Uint8Array) => Promise<void> | void,
): Promise<{ id: string; size: number }> {
  assertSource(source)
  if (isHashedBlob(source)) {
    for (const piece of source.pieces) if (piece.byteLength > 0) await sink(piece)
    return { id: source.id, size: source.size }
  }
  const hash = createHash('sha256')
  let size = 0
  for await (const piece of chunksOf(source, signal)) {
    if (piece.byteLength === 0) continue
    hash.update(piece)
    size += piece.byteLength
    await sink(piece)
  }
  return { id: hash.digest('hex'), size }
}
