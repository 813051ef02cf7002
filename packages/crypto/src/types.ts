/** Options accepted by every streaming call. */
export interface AbortOptions {
  /** Aborts the stream; iteration then rejects with `ERR_ABORTED`. */
  signal?: AbortSignal
}

/** Bytes to encrypt or decrypt: one buffer, a string (UTF-8), or an (async) iterable of buffers. */
export type ByteSource = Uint8Array | string | Iterable<Uint8Array> | AsyncIterable<Uint8Array>
