// A request's body as verified bytes: decoded from aws-chunked when streamed, and checked against
// everything the client said of it — the signed SHA-256, each chunk's signature, Content-MD5, the
// x-amz-checksum-* header or trailer, the length. The MD5 (the ETag) is computed on the way. A
// mismatch throws at the end of the body, before a store fed from here can commit.
import { createHash, type Hash } from 'node:crypto'
import { AwsChunkedDecoder } from './chunked.js'
import { CHECKSUM_BYTES, checksumAlgorithmOf, createChecksum, type ChecksumAlgorithm } from './checksum.js'
import type { S3Context } from './context.js'
import { S3Error } from './errors.js'
import { STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER } from './sigv4.js'

/** What a body turned out to be, once read to its end. */
export interface PayloadInfo {
  size: number
  /** Hex MD5 of the bytes. */
  md5: string
  /** The checksums the client sent and that matched, by header name (`x-amz-checksum-crc32` → base64). */
  checksums: Record<string, string>
}

/** A verified body: read `data` to its end, then `info` is filled in. */
export interface Payload {
  data: AsyncGenerator<Buffer>
  /** The declared length (`x-amz-decoded-content-length` or `Content-Length`), when there is one. */
  length: number | undefined
  info: PayloadInfo
}

const ALGORITHM_NAMES: Record<ChecksumAlgorithm, string> = { crc32: 'CRC32', crc32c: 'CRC32C', sha1: 'SHA1', sha256: 'SHA256' }

const nonNegative = (value: string | undefined, name: string): number | undefined => {
  if (value === undefined) return undefined
  if (!/^\d{1,16}$/.test(value.trim())) throw new S3Error('InvalidArgument', `${name} must be a whole number of bytes.`)
  return Number(value.trim())
}

/** Checks a checksum's given value has the form of its algorithm's digest. */
function checkChecksumForm(name: string, algorithm: ChecksumAlgorithm, value: string): void {
  const bytes = Buffer.from(value, 'base64')
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value) || bytes.length !== CHECKSUM_BYTES[algorithm]) throw new S3Error('InvalidRequest', `Value for ${name} header is invalid.`)
}

/**
 * The verified body of `ctx`'s request. Throws at once for what the headers alone show (a missing
 * length, an unknown checksum); the returned `data` throws on anything the bytes show.
 */
export function verifiedPayload(ctx: S3Context, options: { maxBytes?: number; checksumHeaders?: boolean } = {}): Payload {
  const auth = ctx.auth!
  const payloadHash = auth.payloadHash
  const streamed = payloadHash === STREAMING_SIGNED || payloadHash === STREAMING_SIGNED_TRAILER || payloadHash === STREAMING_UNSIGNED_TRAILER
  const contentLength = nonNegative(ctx.header('content-length'), 'Content-Length')
  const decodedLength = nonNegative(ctx.header('x-amz-decoded-content-length'), 'x-amz-decoded-content-length')
  if (streamed && decodedLength === undefined) throw new S3Error('MissingContentLength', 'You must provide the x-amz-decoded-content-length header with a streamed (aws-chunked) body.')
  const length = streamed ? decodedLength : contentLength
  if (options.maxBytes !== undefined && length !== undefined && length > options.maxBytes) {
    throw new S3Error('EntityTooLarge', `Your proposed upload of ${length} bytes exceeds the maximum allowed size of ${options.maxBytes} bytes.`)
  }

  // Checksums in headers, and announced trailers.
  const expected = new Map<string, { algorithm: ChecksumAlgorithm; value?: string }>()
  // CompleteMultipartUpload's checksum headers describe the whole object, not its XML body.
  for (const [name, values] of options.checksumHeaders === false ? [] : ctx.headers) {
    if (!name.startsWith('x-amz-checksum-') || ['x-amz-checksum-mode', 'x-amz-checksum-type', 'x-amz-checksum-algorithm'].includes(name)) continue
    const algorithm = checksumAlgorithmOf(name)
    if (algorithm === undefined) throw new S3Error('NotImplemented', `The checksum ${name} is not supported: use CRC32, CRC32C, SHA1 or SHA256.`)
    const value = values.join(',').trim()
    checkChecksumForm(name, algorithm, value)
    expected.set(name, { algorithm, value })
  }
  const trailerNames: string[] = []
  const trailerHeader = ctx.header('x-amz-trailer')
  if (trailerHeader !== undefined && trailerHeader.trim() !== '') {
    if (payloadHash !== STREAMING_UNSIGNED_TRAILER && payloadHash !== STREAMING_SIGNED_TRAILER) throw new S3Error('InvalidRequest', 'x-amz-trailer needs x-amz-content-sha256 STREAMING-UNSIGNED-PAYLOAD-TRAILER or STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER.')
    for (const raw of trailerHeader.split(',')) {
      const name = raw.trim().toLowerCase()
      const algorithm = checksumAlgorithmOf(name)
      if (algorithm === undefined) throw new S3Error('NotImplemented', `The trailer ${name.slice(0, 80)} is not supported: the trailer may hold x-amz-checksum-crc32, -crc32c, -sha1 or -sha256.`)
      if (expected.has(name)) throw new S3Error('InvalidRequest', `${name} is both a header and a trailer.`)
      trailerNames.push(name)
      expected.set(name, { algorithm })
    }
  }
  if (expected.size > 1) throw new S3Error('InvalidRequest', 'Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.')
  const contentMd5 = ctx.header('content-md5')?.trim()
  if (contentMd5 !== undefined && (!/^[A-Za-z0-9+/]{22}==$/.test(contentMd5))) throw new S3Error('InvalidDigest', 'The Content-MD5 you specified was invalid.')

  const info: PayloadInfo = { size: 0, md5: '', checksums: {} }
  const decoder = streamed
    ? new AwsChunkedDecoder({
        trailers: trailerNames,
        ...(decodedLength === undefined ? {} : { decodedLength }),
        ...(payloadHash === STREAMING_UNSIGNED_TRAILER ? {} : { signing: { key: auth.signingKey, amzDate: auth.amzDate, scope: auth.scope, seedSignature: auth.signature } }),
      })
    : undefined
  const sha256: Hash | undefined = /^[0-9a-f]{64}$/.test(payloadHash) ? createHash('sha256') : undefined
  const md5 = createHash('md5')
  const checksums = [...expected].map(([name, e]) => ({ name, ...e, running: createChecksum(e.algorithm) }))

  async function* data(): AsyncGenerator<Buffer> {
    ctx.continueBody()
    const source: AsyncIterable<Uint8Array> = (async function* () {
      try {
        for await (const piece of ctx.req as AsyncIterable<Buffer>) yield piece
      } catch (err) {
        throw new S3Error('IncompleteBody', 'The request body ended early: the client went away or the connection failed.', { cause: err })
      }
    })()
    const body = decoder === undefined ? source : decoder.decode(source)
    let size = 0
    for await (const input of body) {
      const piece = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength)
      size += piece.length
      if (options.maxBytes !== undefined && size > options.maxBytes) throw new S3Error('EntityTooLarge', `Your upload exceeds the maximum allowed size of ${options.maxBytes} bytes.`)
      md5.update(piece)
      sha256?.update(piece)
      for (const c of checksums) c.running.update(piece)
      yield piece
    }
    if (length !== undefined && size !== length) throw new S3Error('IncompleteBody', `You did not provide the number of bytes specified by the Content-Length HTTP header (${size} of ${length}).`)
    if (sha256 !== undefined && sha256.digest('hex') !== payloadHash) throw new S3Error('XAmzContentSHA256Mismatch', "The provided 'x-amz-content-sha256' header does not match what was computed.")
    const md5Bytes = md5.digest()
    if (contentMd5 !== undefined && md5Bytes.toString('base64') !== contentMd5) throw new S3Error('BadDigest', 'The Content-MD5 you specified did not match what we received.')
    for (const c of checksums) {
      const given = c.value ?? decoder?.trailers.get(c.name)
      if (given === undefined) throw new S3Error('IncompleteBody', `the trailer ${c.name} did not come`)
      if (c.value === undefined) checkChecksumForm(c.name, c.algorithm, given)
      const computed = c.running.digest()
      if (computed !== given) throw new S3Error('BadDigest', `The ${ALGORITHM_NAMES[c.algorithm]} you specified did not match the calculated checksum.`)
      info.checksums[c.name] = computed
    }
    info.size = size
    info.md5 = md5Bytes.toString('hex')
  }

  return { data: data(), length, info }
}

/** Reads a small verified body whole (an XML request), failing beyond `maxBytes`. */
export async function readSmallBody(payload: Payload, maxBytes: number): Promise<Buffer> {
  const pieces: Buffer[] = []
  let size = 0
  for await (const piece of payload.data) {
    size += piece.length
    if (size > maxBytes) throw new S3Error('MaxMessageLengthExceeded', `Your request was too big: this body may have at most ${maxBytes} bytes.`)
    pieces.push(piece)
  }
  return Buffer.concat(pieces)
}
