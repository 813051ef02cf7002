// The manifest of one stored object: which chunks, in which order, under which ids, and the
// object's metadata. Version 2 manifests are padded to a size bucket (a holder learns little from
// their length) and end with a MAC under a key only the owner has: anyone can encrypt to the
// owner's public recipient, so a manifest that comes back from a peer is believed only with that
// MAC. The encoding is canonical (fixed field order, no white space), so equal manifests are equal
// blobs; a manifest is itself a blob, plaintext on its owner and age-encrypted on peers.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { InvalidOptionsError, PeerError, UnauthenticatedError } from './errors.js'
import { isHex64 } from './wire.js'

/** Format tag of the manifests written before they carried a MAC (still read from local disk). */
export const MANIFEST_FORMAT_V1 = 'dcas-manifest-v1'
/** Format tag of the manifests written now. */
export const MANIFEST_FORMAT = 'dcas-manifest-v2'
/** Largest encoded manifest accepted (about 350,000 chunks). */
export const MAX_MANIFEST_BYTES = 64 * 1024 * 1024
/** Largest object metadata, as JSON bytes. */
export const MAX_METADATA_BYTES = 8 * 1024
/** Longest metadata name, in bytes of UTF-8. */
export const MAX_METADATA_NAME_BYTES = 256

/** Object metadata kept inside the encrypted manifest: lowercase names to string values. */
export type ObjectMetadata = Record<string, string>

/** One chunk of an object. */
export interface ManifestChunk {
  /** SHA-256 of the chunk's plaintext: its blob id on the owner. */
  plainId: string
  /** SHA-256 of the chunk's ciphertext: its blob id on peers. */
  cipherId: string
  /** Plaintext size in bytes. */
  size: number
}

/** Everything needed to rebuild one version of an object from its chunks. */
export interface Manifest {
  key: string
  size: number
  sha256: string
  version: number
  createdAt: number
  /** The age recipients every chunk and the manifest were encrypted to (the owner's first). */
  recipients: string[]
  chunks: ManifestChunk[]
  metadata: ObjectMetadata
}

/** A decoded manifest and whether the owner's MAC vouches for it (version 1 manifests carry none). */
export interface DecodedManifest {
  manifest: Manifest
  authenticated: boolean
}

const MAC_SUFFIX_BYTES = ',"mac":""}'.length + 64

/** The size an encoded manifest of `bytes` is padded to: a power of two from 1 KiB up to 1 MiB, then a multiple of 1 MiB. */
export function paddedSize(bytes: number): number {
  if (bytes <= 1024) return 1024
  if (bytes <= 1 << 20) return 2 ** Math.ceil(Math.log2(bytes))
  return Math.ceil(bytes / (1 << 20)) * (1 << 20)
}

/** Checks metadata: lowercase names of 1 to 256 bytes, string values, at most {@link MAX_METADATA_BYTES} as JSON. */
export function assertValidMetadata(metadata: unknown): asserts metadata is ObjectMetadata {
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) throw new InvalidOptionsError('metadata must be an object of string values')
  for (const [name, value] of Object.entries(metadata)) {
    if (name.length === 0 || Buffer.byteLength(name) > MAX_METADATA_NAME_BYTES || name !== name.toLowerCase()) throw new InvalidOptionsError(`metadata name "${name.slice(0, 64)}" must be 1 to ${MAX_METADATA_NAME_BYTES} bytes, lowercase`)
    if (typeof value !== 'string') throw new InvalidOptionsError(`metadata "${name}" must be a string`)
  }
  const bytes = Buffer.byteLength(JSON.stringify(metadata))
  if (bytes > MAX_METADATA_BYTES) throw new InvalidOptionsError(`metadata is ${bytes} bytes as JSON; at most ${MAX_METADATA_BYTES} are allowed`)
}

const sorted = (metadata: ObjectMetadata): ObjectMetadata => Object.fromEntries(Object.entries(metadata).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))

/** Canonical bytes of a manifest, padded and closed by the MAC under `macKey`. */
export function encodeManifest(m: Manifest, macKey: Uint8Array): Buffer {
  const canonical = {
    format: MANIFEST_FORMAT,
    key: m.key,
    size: m.size,
    sha256: m.sha256,
    version: m.version,
    createdAt: m.createdAt,
    recipients: [...m.recipients],
    metadata: sorted(m.metadata),
    chunks: m.chunks.map((c) => ({ plainId: c.plainId, cipherId: c.cipherId, size: c.size })),
    pad: '',
  }
  // The MAC replaces the closing brace with the 74 bytes of `,"mac":"…"}`.
  const unpadded = Buffer.byteLength(JSON.stringify(canonical)) + MAC_SUFFIX_BYTES - 1
  canonical.pad = ' '.repeat(paddedSize(unpadded) - unpadded)
  const body = JSON.stringify(canonical)
  const mac = createHmac('sha256', macKey).update(body).digest('hex')
  return Buffer.from(`${body.slice(0, -1)},"mac":"${mac}"}`, 'utf8')
}

const isRecipientList = (v: unknown): v is string[] =>
  Array.isArray(v) && v.length > 0 && v.length <= 64 && v.every((r) => typeof r === 'string' && r.length > 0 && r.length <= 1024)
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0

/** Whether a version 2 manifest's bytes end with the MAC of the rest under `macKey`. */
function macVerifies(text: string, macKey: Uint8Array): boolean {
  const at = text.length - MAC_SUFFIX_BYTES
  if (at < 2 || !text.endsWith('"}') || text.slice(at, at + 8) !== ',"mac":"') return false
  const given = Buffer.from(text.slice(at + 8, -2), 'hex')
  const expected = createHmac('sha256', macKey).update(`${text.slice(0, at)}}`).digest()
  return given.length === expected.length && timingSafeEqual(given, expected)
}

/**
 * Parses and checks manifest bytes; anything malformed is a {@link PeerError} (they may come from a peer).
 * A version 2 manifest must carry a MAC under `macKey` that verifies (else {@link UnauthenticatedError});
 * a version 1 manifest is returned
 * unauthenticated, for the caller to trust only if it knows its id from elsewhere (its own index).
 */
export function decodeManifest(bytes: Uint8Array, macKey: Uint8Array): DecodedManifest {
  if (bytes.length > MAX_MANIFEST_BYTES) throw new PeerError(`manifest of ${bytes.length} bytes exceeds ${MAX_MANIFEST_BYTES}`)
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8')
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw new PeerError('manifest is not valid JSON', undefined, { cause: err })
  }
  const m = raw as Record<string, unknown>
  if (typeof m !== 'object' || m === null || (m.format !== MANIFEST_FORMAT && m.format !== MANIFEST_FORMAT_V1)) throw new PeerError('not a dcas manifest')
  const authenticated = m.format === MANIFEST_FORMAT
  if (authenticated && !macVerifies(text, macKey)) throw new UnauthenticatedError("the manifest's MAC does not verify: its owner did not write it")
  if (typeof m.key !== 'string' || !isCount(m.size) || !isHex64(m.sha256) || !isCount(m.version) || !isCount(m.createdAt) || !Array.isArray(m.chunks) || !isRecipientList(m.recipients)) {
    throw new PeerError('manifest fields are malformed')
  }
  let metadata: ObjectMetadata = {}
  if (authenticated) {
    try {
      assertValidMetadata(m.metadata)
    } catch (err) {
      throw new PeerError('manifest metadata is malformed', undefined, { cause: err })
    }
    metadata = { ...m.metadata }
  }
  let total = 0
  const chunks: ManifestChunk[] = m.chunks.map((c: unknown) => {
    const chunk = c as Record<string, unknown>
    if (typeof chunk !== 'object' || chunk === null || !isHex64(chunk.plainId) || !isHex64(chunk.cipherId) || !isCount(chunk.size) || chunk.size === 0) {
      throw new PeerError('manifest chunk is malformed')
    }
    total += chunk.size
    return { plainId: chunk.plainId, cipherId: chunk.cipherId, size: chunk.size }
  })
  if (total !== m.size) throw new PeerError(`manifest chunks add up to ${total} bytes, not ${m.size}`)
  return { manifest: { key: m.key, size: m.size, sha256: m.sha256, version: m.version, createdAt: m.createdAt, recipients: [...m.recipients], chunks, metadata }, authenticated }
}

/** Lowercase hex SHA-256 of some bytes (one array, or the pieces of one). */
export function sha256Hex(bytes: Uint8Array | readonly Uint8Array[]): string {
  const hash = createHash('sha256')
  for (const piece of bytes instanceof Uint8Array ? [bytes] : bytes) hash.update(piece)
  return hash.digest('hex')
}

/** The chunks that hold bytes `[offset, offset + length)`, with where to cut each. */
export function chunksInRange(chunks: ManifestChunk[], offset: number, length: number): Array<{ chunk: ManifestChunk; start: number; end: number }> {
  const out: Array<{ chunk: ManifestChunk; start: number; end: number }> = []
  const stop = offset + length
  let at = 0
  for (const chunk of chunks) {
    const next = at + chunk.size
    if (next > offset && at < stop) out.push({ chunk, start: Math.max(0, offset - at), end: Math.min(chunk.size, stop - at) })
    if (next >= stop) break
    at = next
  }
  return out
}
