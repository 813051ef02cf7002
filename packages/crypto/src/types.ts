/** Options accepted by every streaming call. */
export interface AbortOptions {
  /** Aborts the stream; iteration then rejects with `ERR_ABORTED`. */
  signal?: AbortSignal
}

/** Bytes to encrypt or decrypt: one buffer, a string (UTF-8), or an (async) iterable of buffers. */
export type ByteSource = Uint8Array | string | Iterable<Uint8Array> | AsyncIterable<Uint8Array>

/** Options of `encrypt` and `encryptBytes`. */
export interface EncryptOptions extends AbortOptions {
  /** Wrap the output in the age ASCII armor (`-----BEGIN AGE ENCRYPTED FILE-----`). Default `false`. */
  armor?: boolean
}

/** Options of `encryptWithPassphrase`. */
export interface PassphraseEncryptOptions extends EncryptOptions {
  /** scrypt work factor, log2 of N, from 1 to 30. Default 18 (age's default: about 1 s and 256 MiB). */
  workFactor?: number
}

/** Options of `decrypt` and `decryptBytes`. Armored input is detected by itself. */
export type DecryptOptions = AbortOptions

/** Options of `decryptWithPassphrase`. */
export interface PassphraseDecryptOptions extends DecryptOptions {
  /**
   * Highest scrypt work factor (log2 of N) a file may ask for, from 1 to 30; above it
   * decryption fails with `ERR_WORK_FACTOR` before any work. Default 20 (1 GiB of memory).
   */
  maxWorkFactor?: number
}

/** Options of `writeIdentityFile`. */
export interface WriteIdentityFileOptions extends AbortOptions {
  /** Replace an existing file instead of failing with `ERR_IDENTITY_FILE_EXISTS`. Default `false`. */
  overwrite?: boolean
  /** Time written in the `# created:` comment. Default: now. */
  created?: Date
}
