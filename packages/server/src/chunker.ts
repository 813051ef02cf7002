/**
 * Cuts an object into chunks. The manifest records each chunk's size, so a
 * content-defined chunker can replace the fixed-size one without changing
 * the format.
 */
export interface Chunker {
  /** Yields the chunks of `source` in order; each yielded buffer is owned by the caller. */
  chunks(source: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array>
}

/** The default chunk size: 1 MiB. */
export const DEFAULT_CHUNK_SIZE = 1024 * 1024

/** A {@link Chunker} that cuts every `size` bytes (the last chunk may be shorter; an empty object has no chunk). */
export function fixedSizeChunker(size: number = DEFAULT_CHUNK_SIZE): Chunker {
  if (!Number.isSafeInteger(size) || size < 1) throw new RangeError(`chunk size must be a positive integer, got ${size}`)
  return {
    async *chunks(source) {
      let buf = Buffer.allocUnsafe(size)
      let filled = 0
      for await (const piece of source) {
        let at = 0
        while (at < piece.length) {
          if (filled === 0 && piece.length - at >= size) {
            // A whole chunk inside the piece: hand out a copy without staging it.
            yield Buffer.from(piece.subarray(at, at + size))
            at += size
            continue
          }
          const n = Math.min(size - filled, piece.length - at)
          buf.set(piece.subarray(at, at + n), filled)
          filled += n
          at += n
          if (filled === size) {
            yield buf
            buf = Buffer.allocUnsafe(size)
            filled = 0
          }
        }
      }
      if (filled > 0) yield buf.subarray(0, filled)
    },
  }
}
