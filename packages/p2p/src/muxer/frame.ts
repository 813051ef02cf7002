// The yamux frame: a 12-byte big-endian header (version, type, flags, stream id,
// length), followed for data frames by `length` payload bytes.
import { FrameTooLargeError, ProtocolError } from '../errors.js'

/** Bytes in a frame header. */
export const HEADER_LENGTH = 12
/** The only yamux version there is. */
export const PROTOCOL_VERSION = 0

/** Frame types. */
export const TYPE_DATA = 0
export const TYPE_WINDOW_UPDATE = 1
export const TYPE_PING = 2
export const TYPE_GO_AWAY = 3

/** Frame flags. */
export const FLAG_SYN = 0x1
export const FLAG_ACK = 0x2
export const FLAG_FIN = 0x4
export const FLAG_RST = 0x8
const KNOWN_FLAGS = FLAG_SYN | FLAG_ACK | FLAG_FIN | FLAG_RST

/** Go-away codes (the length field of a go-away frame). */
export const GO_AWAY_NORMAL = 0
export const GO_AWAY_PROTOCOL_ERROR = 1
export const GO_AWAY_INTERNAL_ERROR = 2

/** The receive window every stream starts with, on both sides (yamux: 256 KiB). */
export const INITIAL_STREAM_WINDOW = 256 * 1024
/**
 * The length of a window-update frame with RST that refuses a stream it never processed
 * (too many streams, no receive budget, or after go-away). Plain resets carry 0; peers
 * that do not know this code see an ordinary reset.
 */
export const RESET_REFUSED = 1
/**
 * The receive window a new stream is granted at once, in its first frame (the opener's SYN,
 * the listener's ACK), while the grants of the connection's open streams fit in an eighth of
 * its budget: a 1 MiB body and its header then flow without waiting for a window update.
 */
export const INITIAL_STREAM_GRANT = 1024 * 1024

/** Encodes one frame header into a fresh 12-byte buffer (from Node's shared pool: no per-frame slab). */
export function encodeHeader(type: number, flags: number, streamId: number, length: number): Buffer {
  const header = Buffer.allocUnsafe(HEADER_LENGTH)
  writeHeader(header, 0, type, flags, streamId, length)
  return header
}

/** Writes a frame header at `offset` of `target`. */
export function writeHeader(target: Buffer, offset: number, type: number, flags: number, streamId: number, length: number): void {
  target[offset] = PROTOCOL_VERSION
  target[offset + 1] = type
  target[offset + 2] = flags >>> 8
  target[offset + 3] = flags & 0xff
  target.writeUInt32BE(streamId, offset + 4)
  target.writeUInt32BE(length, offset + 8)
}

/** Receives what {@link FrameDecoder} parses; a handler may throw a typed error to stop decoding. */
export interface FrameSink {
  /** A complete header. For a data frame, its payload follows through `data` and then `dataEnd`. */
  frame(type: number, flags: number, streamId: number, length: number): void
  /** A piece of the current data frame's payload (a view into the pushed chunk, not a copy). */
  data(piece: Buffer): void
  /** The current data frame's payload is complete. */
  dataEnd(): void
}

/**
 * Incremental decoder of yamux frames. It checks everything a header alone can
 * tell (version, type, flags, stream id 0 rules, data length bound) and throws a
 * typed error (`ERR_PROTOCOL`, `ERR_FRAME_TOO_LARGE`) on the first bad header.
 * It never allocates per frame: headers split across chunks go through one
 * reused 12-byte buffer, payloads are handed on as views of the input.
 */
export class FrameDecoder {
  private readonly partial = Buffer.alloc(HEADER_LENGTH)
  private partialLength = 0
  private payloadLeft = 0
  private inPayload = false
  private failed = false

  /**
   * @param sink - receives frames and payload pieces
   * @param maxDataLength - longest data frame accepted (`ERR_FRAME_TOO_LARGE` beyond)
   */
  constructor(
    private readonly sink: FrameSink,
    private readonly maxDataLength: number,
  ) {}

  /** Decodes `chunk`; throws the typed error of the first malformed frame, and then refuses further input. */
  push(chunk: Buffer): void {
    if (this.failed) throw new ProtocolError('the decoder already failed')
    try {
      this.decode(chunk)
    } catch (err) {
      this.failed = true
      throw err
    }
  }

  /** Whether the input so far ends exactly on a frame boundary. */
  get atFrameBoundary(): boolean {
    return !this.inPayload && this.partialLength === 0
  }

  private decode(chunk: Buffer): void {
    const end = chunk.length
    let offset = 0
    while (offset < end) {
      if (this.inPayload) {
        const n = Math.min(this.payloadLeft, end - offset)
        const piece = chunk.subarray(offset, offset + n)
        offset += n
        this.payloadLeft -= n
        this.sink.data(piece)
        if (this.payloadLeft === 0) {
          this.inPayload = false
          this.sink.dataEnd()
        }
      } else if (this.partialLength === 0 && end - offset >= HEADER_LENGTH) {
        // The common case: the whole header is in this chunk, parse it in place.
        this.header(chunk, offset)
        offset += HEADER_LENGTH
      } else {
        const n = Math.min(HEADER_LENGTH - this.partialLength, end - offset)
        chunk.copy(this.partial, this.partialLength, offset, offset + n)
        this.partialLength += n
        offset += n
        if (this.partialLength === HEADER_LENGTH) {
          this.partialLength = 0
          this.header(this.partial, 0)
        }
      }
    }
  }

  private header(buf: Buffer, at: number): void {
    const version = buf[at]!
    const type = buf[at + 1]!
    const flags = (buf[at + 2]! << 8) | buf[at + 3]!
    const streamId = buf.readUInt32BE(at + 4)
    const length = buf.readUInt32BE(at + 8)
    if (version !== PROTOCOL_VERSION) throw new ProtocolError(`unknown frame version ${version}`)
    if (type > TYPE_GO_AWAY) throw new ProtocolError(`unknown frame type ${type}`)
    if ((flags & ~KNOWN_FLAGS) !== 0) throw new ProtocolError(`unknown frame flags 0x${flags.toString(16)}`)
    if (type === TYPE_DATA || type === TYPE_WINDOW_UPDATE) {
      if (streamId === 0) throw new ProtocolError('a data or window update frame for stream 0')
    } else if (streamId !== 0) {
      throw new ProtocolError('a ping or go-away frame for a stream other than 0')
    } else if (type === TYPE_PING && flags !== FLAG_SYN && flags !== FLAG_ACK) {
      throw new ProtocolError('a ping frame must carry exactly SYN or ACK')
    } else if (type === TYPE_GO_AWAY && flags !== 0) {
      throw new ProtocolError('a go-away frame carries no flags')
    }
    if (type !== TYPE_DATA) {
      this.sink.frame(type, flags, streamId, length)
      return
    }
    if (length > this.maxDataLength) {
      throw new FrameTooLargeError(`a data frame of ${length} bytes exceeds the bound of ${this.maxDataLength}`)
    }
    this.sink.frame(type, flags, streamId, length)
    if (length === 0) {
      this.sink.dataEnd()
    } else {
      this.inPayload = true
      this.payloadLeft = length
    }
  }
}
