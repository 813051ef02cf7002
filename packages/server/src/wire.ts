// The replication protocol's framing and limits: each request is one p2p stream carrying a
// length-prefixed JSON header, then raw body bytes; the response comes back the same way.
// Both sides handle a stream through one Exchange. Everything read off the wire is bounded
// and checked before it is used.
import type { Stream } from '@dcas/p2p'
import { isBlobId } from '@dcas/store'
import { PeerError } from './errors.js'

/** Version of the replication protocol, carried in every request header as `v`. */
export const PROTOCOL_VERSION = 1
/** Largest JSON header accepted, in bytes. */
export const MAX_HEADER_BYTES = 64 * 1024
/** Largest ciphertext blob a holder accepts or serves (a 64 MiB chunk plus age overhead). */
export const MAX_BLOB_BYTES = 64 * 1024 * 1024 + 64 * 1024
/** Most ids in one `blob.has` or `blob.release` request. */
export const MAX_HAS_IDS = 512
/** Most ids in one `blob.has` that asks the holder to verify them (it reads each whole): bounds one request's reads. */
export const MAX_VERIFY_IDS = 16
/** Most chunks in one object (128 GiB at the default 1 MiB chunk size): bounds what a holder reads for one ref. */
export const MAX_REF_CHUNKS = 1 << 17
/** Most entries in one page of `ref.list`. */
export const MAX_LIST_PAGE = 256

/** A JSON header: a plain object. */
export type Header = Record<string, unknown>

/** Reads a p2p stream as header(s) then body, buffering only what it must. */
export class StreamReader {
  readonly #it: AsyncIterator<Uint8Array>
  #head: Uint8Array | undefined
  #ended = false

  constructor(source: AsyncIterable<Uint8Array>) {
    this.#it = source[Symbol.asyncIterator]()
  }

  /** The next piece of at most `max` bytes, or `undefined` at the end of the stream. */
  async #next(max: number): Promise<Uint8Array | undefined> {
    let piece = this.#head
    this.#head = undefined
    while (piece === undefined || piece.length === 0) {
      if (this.#ended) return undefined
      const r = await this.#it.next()
      if (r.done === true) {
        this.#ended = true
        return undefined
      }
      piece = r.value
    }
    if (piece.length > max) {
      this.#head = piece.subarray(max)
      return piece.subarray(0, max)
    }
    return piece
  }

  /**
   * Exactly `n` bytes; `undefined` if the stream ends cleanly before the first; throws if it ends in between.
   * Memory grows with the bytes that actually arrive, never with what a peer only announced.
   */
  async readExactly(n: number): Promise<Uint8Array | undefined> {
    const first = await this.#next(n)
    if (first === undefined) return undefined
    if (first.length === n) return first
    const pieces: Uint8Array[] = [first]
    let filled = first.length
    while (filled < n) {
      const piece = await this.#next(n - filled)
      if (piece === undefined) throw new PeerError(`stream ended after ${filled} of ${n} bytes`)
      pieces.push(piece)
      filled += piece.length
    }
    return Buffer.concat(pieces, n)
  }

  /** The next header; `undefined` when the stream ends cleanly instead. */
  async readHeader(): Promise<Header | undefined> {
    const prefix = await this.readExactly(4)
    if (prefix === undefined) return undefined
    const length = new DataView(prefix.buffer, prefix.byteOffset, 4).getUint32(0)
    if (length === 0 || length > MAX_HEADER_BYTES) throw new PeerError(`header of ${length} bytes is out of bounds (1 to ${MAX_HEADER_BYTES})`)
    const bytes = await this.readExactly(length)
    if (bytes === undefined) throw new PeerError('stream ended inside a header')
    let parsed: unknown
    try {
      parsed = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8'))
    } catch (err) {
      throw new PeerError('header is not valid JSON', undefined, { cause: err })
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new PeerError('header is not a JSON object')
    return parsed as Header
  }

  /** A header that must be there. */
  async requireHeader(): Promise<Header> {
    const header = await this.readHeader()
    if (header === undefined) throw new PeerError('stream ended before a header')
    return header
  }

  /** The rest of the stream, which must be exactly `size` bytes. */
  async *body(size: number): AsyncGenerator<Uint8Array> {
    let remaining = size
    while (remaining > 0) {
      const piece = await this.#next(remaining)
      if (piece === undefined) throw new PeerError(`body ended ${remaining} bytes short of ${size}`)
      remaining -= piece.length
      yield piece
    }
    await this.expectEnd()
  }

  /** The next `size` bytes of the stream as they arrive; more may follow. */
  async *part(size: number): AsyncGenerator<Uint8Array> {
    let remaining = size
    while (remaining > 0) {
      const piece = await this.#next(remaining)
      if (piece === undefined) throw new PeerError(`stream ended ${remaining} bytes short of ${size}`)
      remaining -= piece.length
      yield piece
    }
  }

  /** The rest of the stream as one buffer of exactly `size` bytes (for bounded bodies only). */
  async readBody(size: number): Promise<Uint8Array> {
    if (size === 0) {
      await this.expectEnd()
      return new Uint8Array(0)
    }
    const bytes = await this.readExactly(size)
    if (bytes === undefined) throw new PeerError(`body of ${size} bytes is missing`)
    await this.expectEnd()
    return bytes
  }

  /** Checks that nothing follows. */
  async expectEnd(): Promise<void> {
    const extra = await this.#next(1)
    if (extra !== undefined) throw new PeerError('unexpected bytes after the end of the message')
  }
}

/** Encodes a header as its 4-byte big-endian length and JSON. */
export function encodeHeader(header: Header): Uint8Array {
  const json = Buffer.from(JSON.stringify(header), 'utf8')
  if (json.length > MAX_HEADER_BYTES) throw new RangeError(`header of ${json.length} bytes exceeds ${MAX_HEADER_BYTES}`)
  const out = Buffer.allocUnsafe(4 + json.length)
  out.writeUInt32BE(json.length, 0)
  json.copy(out, 4)
  return out
}

/** Writes a header to a stream. */
export async function writeHeader(stream: Stream, header: Header, signal?: AbortSignal): Promise<void> {
  await stream.write(encodeHeader(header), signal === undefined ? undefined : { signal })
}

/** Largest piece written at once, so one write never exceeds a sensible window. */
const WRITE_PIECE = 256 * 1024

/** Bytes held as one array, or as the pieces of one (a sealed blob, a fetched one), never joined to be sent. */
export type Bytes = Uint8Array | readonly Uint8Array[]

/** How many bytes `bytes` holds. */
export function sizeOf(bytes: Bytes): number {
  if (bytes instanceof Uint8Array) return bytes.length
  let size = 0
  for (const piece of bytes) size += piece.length
  return size
}

/** Writes bytes to a stream in bounded pieces, awaiting each (backpressure). */
export async function writeBytes(stream: Stream, bytes: Bytes, signal?: AbortSignal): Promise<void> {
  const options = signal === undefined ? undefined : { signal }
  for (const piece of bytes instanceof Uint8Array ? [bytes] : bytes) {
    for (let at = 0; at < piece.length; at += WRITE_PIECE) await stream.write(piece.subarray(at, at + WRITE_PIECE), options)
  }
}

/**
 * One request and its response on one p2p stream, as either side sees it: read headers and
 * bodies, answer, stream bytes, then end the stream or reset it.
 */
export class Exchange {
  readonly #stream: Stream
  readonly #reader: StreamReader

  constructor(stream: Stream) {
    this.#stream = stream
    this.#reader = new StreamReader(stream)
  }

  /** The next header; `undefined` when the other side ended the stream instead. */
  readHeader(): Promise<Header | undefined> {
    return this.#reader.readHeader()
  }

  /** A header that must be there. */
  requireHeader(): Promise<Header> {
    return this.#reader.requireHeader()
  }

  /** The rest of the stream, exactly `size` bytes, as it arrives. */
  body(size: number): AsyncGenerator<Uint8Array> {
    return this.#reader.body(size)
  }

  /** The rest of the stream as one buffer of exactly `size` bytes (bounded bodies only). */
  readBody(size: number): Promise<Uint8Array> {
    return this.#reader.readBody(size)
  }

  /** The next `size` bytes as they arrive (a body that more messages follow). */
  part(size: number): AsyncGenerator<Uint8Array> {
    return this.#reader.part(size)
  }

  /** Checks that the other side sends nothing more. */
  expectEnd(): Promise<void> {
    return this.#reader.expectEnd()
  }

  /** Sends a header. */
  send(header: Header, signal?: AbortSignal): Promise<void> {
    return writeHeader(this.#stream, header, signal)
  }

  /** Sends body bytes, in bounded pieces, under backpressure. */
  sendBytes(bytes: Bytes, signal?: AbortSignal): Promise<void> {
    return writeBytes(this.#stream, bytes, signal)
  }

  /** Ends this side of the stream (the other side may still be sending). */
  end(): Promise<void> {
    return this.#stream.closeWrite()
  }

  /** Abandons the stream in both directions. */
  reset(err?: Error): void {
    this.#stream.reset(err)
  }
}

/** Throws a {@link PeerError} carrying the remote's code when a response says `ok: false`. */
export function checkResponse(header: Header): Header {
  if (header.ok === true) return header
  const code = typeof header.code === 'string' ? header.code.slice(0, 64) : undefined
  const message = typeof header.message === 'string' ? header.message.slice(0, 512) : 'request failed'
  throw new PeerError(`peer answered ${code ?? 'an error'}: ${message}`, code)
}

/** A lowercase hex SHA-256 field. */
export function hex64(header: Header, field: string): string {
  const value = header[field]
  if (!isBlobId(value)) throw new PeerError(`field "${field}" must be 64 lowercase hex characters`)
  return value
}

/** A non-negative safe-integer field, at most `max`. */
export function uint(header: Header, field: string, max = Number.MAX_SAFE_INTEGER): number {
  const value = header[field]
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new PeerError(`field "${field}" must be an integer from 0 to ${max}`)
  }
  return value
}

/** An optional field of {@link hex64}. */
export function optionalHex64(header: Header, field: string): string | undefined {
  return header[field] === undefined ? undefined : hex64(header, field)
}

/** Checks an array of lowercase hex SHA-256 ids, at most `max` long. */
export function hex64List(value: unknown, field: string, max: number): string[] {
  if (!Array.isArray(value) || value.length > max) throw new PeerError(`field "${field}" must be an array of at most ${max} ids`)
  for (const id of value) if (!isBlobId(id)) throw new PeerError(`field "${field}" holds a malformed id`)
  return value as string[]
}

/** Whether a value is a lowercase hex SHA-256 (a blob, chunk, ref or node id). */
export const isHex64: (value: unknown) => value is string = isBlobId
