// An S3 object's metadata as dcas keeps it, inside the object's encrypted manifest: the standard
// headers (Content-Type…), the user's `x-amz-meta-*`, the ETag and the checksums. Read from a
// request's headers, written back as a response's.
import { S3Error } from './errors.js'
import type { GatewayObject, ObjectMetadata } from './store-api.js'

/** Standard headers an object keeps and answers with. */
export const STANDARD_HEADERS = ['content-type', 'content-encoding', 'content-disposition', 'content-language', 'cache-control', 'expires'] as const
/** The ETag (without quotes): a hex MD5, or `md5-of-md5s-N` for a multipart object. */
export const ETAG = 'etag'
/** Most bytes of user metadata (`x-amz-meta-*` names and values), as S3. */
export const MAX_USER_METADATA_BYTES = 2048
/** Most bytes of one standard header's value kept. */
const MAX_STANDARD_VALUE_BYTES = 1024
/** Most bytes of metadata, as JSON, a dcas server keeps with an object (`@dcas/server` refuses more with ERR_INVALID_OPTIONS). */
export const MAX_STORED_METADATA_BYTES = 8 * 1024
/** Longest metadata name a dcas server keeps, in bytes (`x-amz-meta-` included). */
const MAX_STORED_NAME_BYTES = 256
/** Room kept in {@link MAX_STORED_METADATA_BYTES} for what the gateway adds to a request's metadata: the ETag and checksums. */
const GATEWAY_METADATA_BYTES = 512
/** The content type an object stored without one is served with. */
export const DEFAULT_CONTENT_TYPE = 'binary/octet-stream'

/**
 * The object's metadata from a request's headers (the standard ones and `x-amz-meta-*`), checked before
 * any body is read: `MetadataTooLarge` beyond S3's limits or what a dcas server keeps.
 */
export function metadataFromHeaders(header: (name: string) => string | undefined, names: Iterable<string>): ObjectMetadata {
  const metadata: ObjectMetadata = {}
  for (const name of STANDARD_HEADERS) {
    let value = header(name)
    if (name === 'content-encoding' && value !== undefined) {
      // aws-chunked describes the upload's framing, not the object.
      value = value
        .split(',')
        .map((v) => v.trim())
        .filter((v) => v !== '' && v.toLowerCase() !== 'aws-chunked')
        .join(',')
      if (value === '') value = undefined
    }
    if (value === undefined) continue
    if (Buffer.byteLength(value) > MAX_STANDARD_VALUE_BYTES) throw new S3Error('MetadataTooLarge', `The ${name} header may have at most ${MAX_STANDARD_VALUE_BYTES} bytes.`)
    metadata[name] = value
  }
  let userBytes = 0
  for (const name of names) {
    if (!name.startsWith('x-amz-meta-')) continue
    const value = header(name) ?? ''
    if (Buffer.byteLength(name) > MAX_STORED_NAME_BYTES) throw new S3Error('MetadataTooLarge', `The metadata name ${name.slice(0, 64)}… is too long: at most ${MAX_STORED_NAME_BYTES - 'x-amz-meta-'.length} bytes follow x-amz-meta-.`)
    userBytes += Buffer.byteLength(name.slice('x-amz-meta-'.length)) + Buffer.byteLength(value)
    metadata[name] = value
  }
  if (userBytes > MAX_USER_METADATA_BYTES) throw new S3Error('MetadataTooLarge', `Your metadata headers exceed the maximum allowed metadata size: ${userBytes} bytes of x-amz-meta-* names and values, at most ${MAX_USER_METADATA_BYTES}.`)
  // Many short x-amz-meta-* headers fit S3's limit and not a dcas manifest: refused now, not after the body.
  const stored = Buffer.byteLength(JSON.stringify(metadata))
  if (stored + GATEWAY_METADATA_BYTES > MAX_STORED_METADATA_BYTES) throw new S3Error('MetadataTooLarge', `Your metadata headers exceed the maximum allowed metadata size: ${stored} bytes as stored, at most ${MAX_STORED_METADATA_BYTES - GATEWAY_METADATA_BYTES}.`)
  return metadata
}

/** The part of `metadata` a copy or a completed upload carries over: standard headers and user metadata. */
export function describingMetadata(metadata: ObjectMetadata): ObjectMetadata {
  const out: ObjectMetadata = {}
  for (const [name, value] of Object.entries(metadata)) {
    if ((STANDARD_HEADERS as readonly string[]).includes(name) || name.startsWith('x-amz-meta-')) out[name] = value
  }
  return out
}

/** The ETag of an object, quoted: its MD5 (or multipart form), else its SHA-256 (an object stored outside the gateway). */
export function etagOf(object: Pick<GatewayObject, 'metadata' | 'sha256'>): string {
  return `"${object.metadata[ETAG] ?? object.sha256}"`
}

/** The headers a GET or HEAD answers with for an object's metadata. */
export function metadataHeaders(metadata: ObjectMetadata, withChecksums: boolean): Record<string, string> {
  const headers: Record<string, string> = { 'content-type': metadata['content-type'] ?? DEFAULT_CONTENT_TYPE }
  for (const [name, value] of Object.entries(metadata)) {
    if (name === 'content-type') continue
    if ((STANDARD_HEADERS as readonly string[]).includes(name) || name.startsWith('x-amz-meta-')) headers[name] = value
    else if (withChecksums && name.startsWith('x-amz-checksum-')) headers[name] = value
  }
  return headers
}
