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
  /**
   * Makes the encryption deterministic: exactly 32 bytes (else `ERR_INVALID_ARGUMENT`).
   * Everything age draws at random (the file key, each recipient stanza's ephemeral
   * X25519 secret, the payload nonce) is derived from the seed with HKDF-SHA256 instead,
   * so the same seed, plaintext and recipients (in the same order) always give the
   * same bytes. The output is a normal age file: any age implementation decrypts it.
   *
   * This is keyed convergent encryption, for content-addressed storage where equal
   * plaintexts must give equal ciphertexts. The seed must be:
   * - **secret**: whoever knows it can confirm a guess of the plaintext;
   * - **unique per plaintext**: two different plaintexts under one seed share the file
   *   key and payload nonce, which breaks ChaCha20-Poly1305 (keystream reuse, forgeries).
   *   Derive it from the plaintext with a secret key, e.g.
   *   `HMAC-SHA256(ownerSecret, SHA-256(plaintext))`, as the dcas server does.
   *
   * Equal seeds reveal equal plaintexts (that is the point); nothing else is revealed.
   * Not available for passphrase (scrypt) encryption, which is always randomized.
   */
  seed?: Uint8Array
}

/** Options of `encryptWithPassphrase` (no `seed`: passphrase encryption is always randomized). */
export interface PassphraseEncryptOptions extends Omit<EncryptOptions, 'seed'> {
  /** scrypt work factor, log2 of N, from 1 to 30. Default 18 (age's default: about 1 s and 256 MiB). */
  workFactor?: number
}

/**
 * Options of `decrypt` and `decryptBytes`. Armored input is detected by itself.
 *
 * The limits bound the work a file can ask of the decryptor before its header MAC
 * is checked: each X25519 stanza costs one X25519 operation per identity tried, so
 * a hostile header with thousands of stanzas would hold the event loop for seconds.
 */
export interface DecryptOptions extends AbortOptions {
  /**
   * Most recipient stanzas a header may hold, from 1 to 65 536; more fail with
   * `ERR_TOO_MANY_STANZAS` before any stanza is tried. Default
   * `DEFAULT_MAX_STANZAS` (64), far above what dcas writes (the owner plus a few
   * recovery recipients).
   */
  maxStanzas?: number
  /**
   * Longest header accepted, in bytes, from 64 to 16 MiB; longer fails with
   * `ERR_HEADER_TOO_LARGE` as soon as that many bytes were read without its end.
   * Default `DEFAULT_MAX_HEADER_BYTES` (1 MiB).
   */
  maxHeaderBytes?: number
}

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

/** Options of `encryptBlob`: those of `encryptBytes` but `armor` (a blob is the binary file). */
export type EncryptBlobOptions = Omit<EncryptOptions, 'armor'>

/** What `encryptBlob` returns: an age file held in memory and its content address. */
export interface EncryptedBlob {
  /** The whole binary age file. */
  ciphertext: Uint8Array
  /** Lowercase hex SHA-256 of `ciphertext`, computed while it was sealed. */
  sha256: string
}

/** What `encryptBlobPieces` returns: the age file as the pieces it was sealed into, and its content address. */
export interface SealedBlob {
  /** The binary age file, in order: the header (with the payload nonce), then each 64 KiB chunk's ciphertext and tag. */
  pieces: Uint8Array[]
  /** Bytes in all the pieces together. */
  size: number
  /** Lowercase hex SHA-256 of the pieces joined, computed while they were sealed. */
  sha256: string
}

/** What `decryptBlob` returns: the plaintext and its content address. */
export interface DecryptedBlob {
  /** The decrypted bytes, every chunk verified. */
  plaintext: Uint8Array
  /** Lowercase hex SHA-256 of `plaintext`, computed while it was copied out. */
  sha256: string
}
