// The manifest of one stored object: which chunks, in which order, under which ids.
// It is encoded canonically (fixed field order, no white space) so equal manifests are
// equal blobs, and it is itself a blob: plaintext on its owner, age-encrypted on peers.
import { createHash } from 'node:crypto'
import { PeerError } from './errors.js'
import { isHex64 } from './wire.js'

/** Format tag of version 1 manifests. */
export const MANIFEST_FORMAT = 'dcas-manifest-v1'
/** Largest encoded manifest accepted (about 350,000 chunks). */
export const MAX_MANIFEST_BYTES = 64 * 1024 * 1024

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
}

/** Canonical bytes of a manifest. */
export function encodeManifest(m: Manifest): Buffer {
  const canonical = {
    format: MANIFEST_FORMAT,
    key: m.key,
    size: m.size,
    sha256: m.sha256,
    version: m.version,
    createdAt: m.createdAt,
    recipients: [...m.recipients],
    chunks: m.chunks.map((c) => ({ plainId: c.plainId, cipherId: c.cipherId, size: c.size })),
  }
  return Buffer.from(JSON.stringify(canonical), 'utf8')
}

const isRecipientList = (v: unknown): v is string[] =>
  Array.isArray(v) && v.length > 0 && v.length <= 64 && v.every((r) => typeof r === 'string' && r.length > 0 && r.length <= 1024)
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0

/** Parses and checks manifest bytes; anything malformed is a {@link PeerError} (they may come from a peer). */
export function decodeManifest(bytes: Uint8Array): Manifest {
  if (bytes.length > MAX_MANIFEST_BYTES) throw new PeerError(`manifest of ${bytes.length} bytes exceeds ${MAX_MANIFEST_BYTES}`)
  let raw: unknown
  try {
    raw = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8'))
  } catch (err) {
    throw new PeerError('manifest is not valid JSON', undefined, { cause: err })
  }
  const m = raw as Record<string, unknown>
  if (typeof m !== 'object' || m === null || m.format !== MANIFEST_FORMAT) throw new PeerError('not a dcas v1 manifest')
  if (typeof m.key !== 'string' || !isCount(m.size) || !isHex64(m.sha256) || !isCount(m.version) || !isCount(m.createdAt) || !Array.isArray(m.chunks) || !isRecipientList(m.recipients)) {
    throw new PeerError('manifest fields are malformed')
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
  return { key: m.key, size: m.size, sha256: m.sha256, version: m.version, createdAt: m.createdAt, recipients: [...m.recipients], chunks }
}

/** Lowercase hex SHA-256 of some bytes. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
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
