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

/** Staging buffers kept between stores, so that a store of a small object allocates only its own bytes. */
const SPARE_BUFFERS = 8

/**
 * A {@link Chunker} that cuts every `size` bytes (the last chunk may be shorter; an empty object has no chunk).
 * A short last chunk is handed out as a copy of its own size, and its chunk-sized staging buffer kept for the
 * next store: a 64 KiB object costs 64 KiB, not a chunk's worth of memory.
 */
export function fixedSizeChunker(size: number = DEFAULT_CHUNK_SIZE): Chunker {
  if (!Number.isSafeInteger(size) || size < 1) throw new RangeError(`chunk size must be a positive integer, got ${size}`)
  const spare: Buffer[] = []
  return {
    async *chunks(source) {
      let buf: Buffer | undefined
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
          buf ??= spare.pop() ?? Buffer.allocUnsafe(size)
          const n = Math.min(size - filled, piece.length - at)
          buf.set(piece.subarray(at, at + n), filled)
          filled += n
          at += n
          if (filled === size) {
            // Handed over: the next chunk is staged in another buffer.
            const full = buf
            buf = undefined
            filled = 0
            yield full
          }
        }
      }
      if (buf === undefined) return
      const tail = buf
      buf = undefined
      if (filled === 0) {
        if (spare.length < SPARE_BUFFERS) spare.push(tail)
        return
      }
      if (filled > size / 2) {
        yield tail.subarray(0, filled)
        return
      }
      // Its own memory, not a view into Node's shared pool.
      const copy = Buffer.allocUnsafeSlow(filled)
      copy.set(tail.subarray(0, filled))
      if (spare.length < SPARE_BUFFERS) spare.push(tail)
      yield copy
    },
  }
}
