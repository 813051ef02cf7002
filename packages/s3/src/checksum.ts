// The checksums S3 clients send with uploads (`x-amz-checksum-*` headers and trailers), computed
// while the bytes stream: CRC32 (zlib's when Node has it), CRC32C (table-driven), SHA-1, SHA-256.
import { createHash, type Hash } from 'node:crypto'
import * as zlib from 'node:zlib'

/** The checksum algorithms of S3's `x-amz-checksum-*` headers that the gateway verifies. */
export const CHECKSUM_ALGORITHMS = ['crc32', 'crc32c', 'sha1', 'sha256'] as const

/** One of {@link CHECKSUM_ALGORITHMS}. */
export type ChecksumAlgorithm = (typeof CHECKSUM_ALGORITHMS)[number]

/** A checksum being computed over a stream of bytes. */
export interface Checksum {
  update(bytes: Uint8Array): void
  /** The checksum as S3 writes it: base64 of its big-endian bytes. */
  digest(): string
}

/** Slicing-by-8 tables of a reflected CRC-32 polynomial: 8 × 256 entries. */
function crcTables(polynomial: number): Uint32Array {
  const t = new Uint32Array(8 * 256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ polynomial : c >>> 1
    t[n] = c >>> 0
  }
  for (let n = 0; n < 256; n++) {
    for (let k = 1; k < 8; k++) {
      const previous = t[(k - 1) * 256 + n]!
      t[k * 256 + n] = (previous >>> 8) ^ t[previous & 0xff]!
    }
  }
  return t
}

/** Continues a reflected CRC-32 (initial value and final XOR 0xffffffff) over `bytes`. */
function crcUpdate(t: Uint32Array, crc: number, bytes: Uint8Array): number {
  let c = ~crc
  let i = 0
  const end8 = bytes.length - (bytes.length % 8)
  for (; i < end8; i += 8) {
    c ^= bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24)
    c =
      t[7 * 256 + (c & 0xff)]! ^
      t[6 * 256 + ((c >>> 8) & 0xff)]! ^
      t[5 * 256 + ((c >>> 16) & 0xff)]! ^
      t[4 * 256 + (c >>> 24)]! ^
      t[3 * 256 + bytes[i + 4]!]! ^
      t[2 * 256 + bytes[i + 5]!]! ^
      t[256 + bytes[i + 6]!]! ^
      t[bytes[i + 7]!]!
  }
  for (; i < bytes.length; i++) c = t[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8)
  return ~c >>> 0
}

let crc32Tables: Uint32Array | undefined
let crc32cTables: Uint32Array | undefined

/** CRC-32 (ISO-HDLC, zlib's) of `bytes`, continuing from `crc` (0 to start). Node's zlib.crc32 where it exists (Node ≥ 20.15). */
export function crc32(bytes: Uint8Array, crc = 0): number {
  const native = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32
  if (native !== undefined) return native(bytes, crc)
  return crcUpdate((crc32Tables ??= crcTables(0xedb88320)), crc, bytes)
}

/** The table-driven CRC-32, also where Node has its own (for tests that compare the two). */
export function crc32Portable(bytes: Uint8Array, crc = 0): number {
  return crcUpdate((crc32Tables ??= crcTables(0xedb88320)), crc, bytes)
}

/** CRC-32C (Castagnoli) of `bytes`, continuing from `crc` (0 to start). */
export function crc32c(bytes: Uint8Array, crc = 0): number {
  return crcUpdate((crc32cTables ??= crcTables(0x82f63b78)), crc, bytes)
}

const crcBase64 = (crc: number): string => {
  const out = Buffer.alloc(4)
  out.writeUInt32BE(crc >>> 0)
  return out.toString('base64')
}

class CrcChecksum implements Checksum {
  #crc = 0
  constructor(readonly fn: (bytes: Uint8Array, crc: number) => number) {}
  update(bytes: Uint8Array): void {
    this.#crc = this.fn(bytes, this.#crc)
  }
  digest(): string {
    return crcBase64(this.#crc)
  }
}

class HashChecksum implements Checksum {
  readonly #hash: Hash
  constructor(algorithm: string) {
    this.#hash = createHash(algorithm)
  }
  update(bytes: Uint8Array): void {
    this.#hash.update(bytes)
  }
  digest(): string {
    return this.#hash.digest('base64')
  }
}

/** A new running checksum of `algorithm`. */
export function createChecksum(algorithm: ChecksumAlgorithm): Checksum {
  switch (algorithm) {
    case 'crc32':
      return new CrcChecksum(crc32)
    case 'crc32c':
      return new CrcChecksum(crc32c)
    case 'sha1':
      return new HashChecksum('sha1')
    case 'sha256':
      return new HashChecksum('sha256')
  }
}

/** `x-amz-checksum-crc32` → `crc32`; `undefined` for any other name. */
export function checksumAlgorithmOf(headerName: string): ChecksumAlgorithm | undefined {
  const m = /^x-amz-checksum-([a-z0-9]+)$/.exec(headerName.toLowerCase())
  return m !== null && (CHECKSUM_ALGORITHMS as readonly string[]).includes(m[1]!) ? (m[1] as ChecksumAlgorithm) : undefined
}

/** Bytes each algorithm's digest has, to check a given value's form before the data streams. */
export const CHECKSUM_BYTES: Record<ChecksumAlgorithm, number> = { crc32: 4, crc32c: 4, sha1: 20, sha256: 32 }
