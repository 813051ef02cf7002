// The `aws-chunked` body encoding of streamed uploads, decoded as it arrives: each chunk's data is
// passed on as it comes (never held whole), each chunk signature checked against the chain started by
// the request's own signature, and the trailer (checksums, its signature) read at the end.
// A broken frame, a wrong signature or a missing trailer throws, so a store fed from here fails.
import { createHash, type Hash } from 'node:crypto'
import { S3Error } from './errors.js'
import { EMPTY_SHA256, sameSignature, sign } from './sigv4.js'

/** Longest chunk header line (`hex-size;chunk-signature=…`) accepted. */
const MAX_HEADER_LINE = 4096
/** Most trailer bytes accepted. */
const MAX_TRAILER_BYTES = 16 * 1024

/** How the chunks are signed: from the request's signature, with the request's key, date and scope. */
export interface ChunkSigning {
  key: Buffer
  amzDate: string
  scope: string
  /** The request's own signature: the chain's first "previous signature". */
  seedSignature: string
}

/** Options of {@link AwsChunkedDecoder}. */
export interface AwsChunkedOptions {
  /** Present for `STREAMING-AWS4-HMAC-SHA256-PAYLOAD(-TRAILER)`: every chunk (and the trailer) is signed. */
  signing?: ChunkSigning
  /** The trailer headers announced in `x-amz-trailer` (lowercase): each must come, and no other. */
  trailers: readonly string[]
  /** `x-amz-decoded-content-length`: the data must add up to it. */
  decodedLength?: number
}

const malformed = (what: string): S3Error => new S3Error('InvalidRequest', `malformed aws-chunked body: ${what}`)
const badChunkSignature = (): S3Error => new S3Error('SignatureDoesNotMatch', 'The chunk signature we calculated does not match the signature you provided (a chunk of the body was changed or its signature is wrong).')

/** Decodes one `aws-chunked` body; after {@link AwsChunkedDecoder.decode} has ended, `trailers` holds the trailer's values. */
export class AwsChunkedDecoder {
  /** Trailer header (lowercase) → value, once the body has ended. */
  readonly trailers = new Map<string, string>()
  readonly #options: AwsChunkedOptions
  #previousSignature: string | undefined

  constructor(options: AwsChunkedOptions) {
    this.#options = options
    this.#previousSignature = options.signing?.seedSignature
  }

  /** The body's data, chunk by chunk as it arrives. Throws an {@link S3Error} on anything wrong. */
  async *decode(source: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
    const { signing, decodedLength } = this.#options
    let state: 'header' | 'data' | 'data-end' | 'trailer' | 'done' = 'header'
    let line: Buffer = Buffer.alloc(0)
    let left = 0
    let chunkSignature = ''
    let chunkHash: Hash | undefined
    let total = 0
    let trailerBytes = 0
    let crlfSeen = 0

    for await (const input of source) {
      let piece = Buffer.from(input.buffer, input.byteOffset, input.byteLength)
      while (piece.length > 0) {
        if (state === 'data') {
          const take = Math.min(left, piece.length)
          const data = piece.subarray(0, take)
          piece = piece.subarray(take)
          left -= take
          chunkHash?.update(data)
          yield data
          if (left === 0) {
            if (signing !== undefined) this.#checkChunk(chunkSignature, chunkHash!.digest('hex'))
            state = 'data-end'
            crlfSeen = 0
          }
          continue
        }
        if (state === 'data-end') {
          // The CRLF after a chunk's data, maybe split across pieces.
          const expected = crlfSeen === 0 ? 0x0d : 0x0a
          if (piece[0] !== expected) throw malformed('a chunk is longer than its declared size')
          piece = piece.subarray(1)
          if (++crlfSeen === 2) state = 'header'
          continue
        }
        if (state === 'done') throw malformed('bytes after the final chunk and trailer')
        // A line: a chunk header, or a trailer line.
        const nl = piece.indexOf(0x0a)
        const upTo = nl < 0 ? piece.length : nl + 1
        line = line.length === 0 ? piece.subarray(0, upTo) : Buffer.concat([line, piece.subarray(0, upTo)])
        piece = piece.subarray(upTo)
        if (state === 'trailer') {
          trailerBytes += upTo
          if (trailerBytes > MAX_TRAILER_BYTES) throw malformed(`a trailer longer than ${MAX_TRAILER_BYTES} bytes`)
        } else if (line.length > MAX_HEADER_LINE) {
          throw malformed(`a chunk header longer than ${MAX_HEADER_LINE} bytes`)
        }
        if (nl < 0) continue
        if (line.length < 2 || line[line.length - 2] !== 0x0d) throw malformed('a line that does not end in CRLF')
        const text = line.subarray(0, line.length - 2).toString('latin1')
        line = Buffer.alloc(0)
        if (state === 'trailer') {
          if (text === '') {
            this.#finishTrailer()
            state = 'done'
          } else {
            this.#trailerLine(text)
          }
          continue
        }
        // A chunk header: hex size, then `;chunk-signature=…` when signed.
        const m = /^([0-9a-fA-F]{1,13})(?:;(.*))?$/.exec(text)
        if (m === null) throw malformed(`a chunk header "${text.slice(0, 80)}"`)
        const size = parseInt(m[1]!, 16)
        if (signing !== undefined) {
          const sig = /^chunk-signature=([0-9a-f]{64})$/.exec(m[2] ?? '')
          if (sig === null) throw new S3Error('SignatureDoesNotMatch', 'a chunk of a signed aws-chunked body has no chunk-signature')
          chunkSignature = sig[1]!
        }
        total += size
        if (decodedLength !== undefined && total > decodedLength) throw new S3Error('InvalidRequest', `the aws-chunked body holds more than its x-amz-decoded-content-length (${decodedLength} bytes)`)
        if (size === 0) {
          if (signing !== undefined) this.#checkChunk(chunkSignature, EMPTY_SHA256)
          state = 'trailer'
          trailerBytes = 0
          continue
        }
        left = size
        chunkHash = signing === undefined ? undefined : createHash('sha256')
        state = 'data'
      }
    }
    // Some clients end the body after the last trailer line without the empty line: that is complete too.
    if (state === 'trailer' && line.length === 0) {
      this.#finishTrailer()
      state = 'done'
    }
    if (state !== 'done') throw new S3Error('IncompleteBody', 'The request body ended before its final chunk: you did not provide the number of bytes specified by the Content-Length HTTP header.')
    if (decodedLength !== undefined && total !== decodedLength) throw new S3Error('IncompleteBody', `The aws-chunked body holds ${total} bytes, not its x-amz-decoded-content-length (${decodedLength}).`)
  }

  #checkChunk(given: string, dataHash: string): void {
    const { key, amzDate, scope } = this.#options.signing!
    const expected = sign(key, ['AWS4-HMAC-SHA256-PAYLOAD', amzDate, scope, this.#previousSignature!, EMPTY_SHA256, dataHash].join('\n'))
    if (!sameSignature(given, expected)) throw badChunkSignature()
    this.#previousSignature = given
  }

  #trailerSignature: string | undefined

  #trailerLine(text: string): void {
    const colon = text.indexOf(':')
    if (colon <= 0) throw malformed(`a trailer line "${text.slice(0, 80)}"`)
    const name = text.slice(0, colon).trim().toLowerCase()
    const value = text.slice(colon + 1).trim()
    if (name === 'x-amz-trailer-signature' && this.#options.signing !== undefined) {
      this.#trailerSignature = value
      return
    }
    if (!this.#options.trailers.includes(name)) throw new S3Error('InvalidRequest', `the trailer "${name.slice(0, 80)}" was not announced in x-amz-trailer`)
    if (this.trailers.has(name)) throw malformed(`the trailer "${name}" twice`)
    this.trailers.set(name, value)
  }

  #finishTrailer(): void {
    for (const name of this.#options.trailers) {
      if (!this.trailers.has(name)) throw new S3Error('IncompleteBody', `the trailer ${name} announced in x-amz-trailer did not come`)
    }
    const signing = this.#options.signing
    if (signing === undefined || this.#options.trailers.length === 0) return
    if (this.#trailerSignature === undefined) throw new S3Error('SignatureDoesNotMatch', 'the trailer of a signed aws-chunked body has no x-amz-trailer-signature')
    const canonical = [...this.trailers].map(([name, value]) => `${name}:${value}\n`).join('')
    const hash = createHash('sha256').update(canonical).digest('hex')
    const expected = sign(signing.key, ['AWS4-HMAC-SHA256-TRAILER', signing.amzDate, signing.scope, this.#previousSignature!, hash].join('\n'))
    if (!sameSignature(this.#trailerSignature, expected)) throw new S3Error('SignatureDoesNotMatch', 'The trailer signature we calculated does not match the signature you provided.')
  }
}
