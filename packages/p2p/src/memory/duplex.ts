// An in-memory byte pipe with the behaviour of a socket pair that matters to the
// muxer: bytes are copied (as the kernel would), arrive asynchronously (never
// inside the writer's call), and a reader that stops reading stops the writer.
import { Duplex } from 'node:stream'

const HIGH_WATER_MARK = 64 * 1024
/** Largest piece delivered at once, like a socket read (larger copies would each map fresh pages). */
const PIECE_LENGTH = 64 * 1024

type WriteCallback = (error?: Error | null) => void

/** One end of a {@link createMemoryDuplexPair} pipe. */
export class MemoryDuplex extends Duplex {
  private peer!: MemoryDuplex
  /** Bytes written, not yet delivered to the peer; `null` is the end of the stream. */
  private outbox: (Buffer | null)[] = []
  private flushScheduled = false
  private endQueued = false
  private eofReceived = false
  /** The write callback held while the peer's reader is full. */
  private held: WriteCallback | undefined
  private blackholed = false

  constructor() {
    // Like a TCP socket: the end of reading ends writing too.
    super({ allowHalfOpen: false, highWaterMark: HIGH_WATER_MARK })
  }

  /** Links two ends (used once, by {@link createMemoryDuplexPair}). */
  static pair(): [MemoryDuplex, MemoryDuplex] {
    const a = new MemoryDuplex()
    const b = new MemoryDuplex()
    a.peer = b
    b.peer = a
    return [a, b]
  }

  /** From now on bytes written by either end vanish and nothing arrives: a silent network failure. */
  blackhole(): void {
    for (const end of [this, this.peer]) {
      end.blackholed = true
      end.outbox = []
      end.release()
    }
  }

  /** Both ends fail with `error`, as when the link breaks. */
  sever(error: Error): void {
    const peer = this.peer
    this.destroy(error)
    peer.destroy(error)
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: WriteCallback): void {
    this.enqueue([chunk], callback)
  }

  override _writev(chunks: { chunk: Buffer }[], callback: WriteCallback): void {
    this.enqueue(
      chunks.map(({ chunk }) => chunk),
      callback,
    )
  }

  override _final(callback: WriteCallback): void {
    this.queueEnd()
    callback()
  }

  override _read(): void {
    // Our reader wants more: the peer's writer may go on.
    this.peer.release()
  }

  override _destroy(error: Error | null, callback: WriteCallback): void {
    this.held = undefined
    // The peer reads what was sent, then the end (a TCP FIN or reset).
    this.queueEnd()
    callback(error)
  }

  /** Copies the bytes into pieces of at most 64 KiB, as a socket's reads would deliver them. */
  private enqueue(chunks: Buffer[], callback: WriteCallback): void {
    if (this.blackholed || this.peer.destroyed) {
      callback()
      return
    }
    let length = 0
    for (const chunk of chunks) length += chunk.length
    let piece = Buffer.allocUnsafe(Math.min(length, PIECE_LENGTH))
    let filled = 0
    for (const chunk of chunks) {
      let offset = 0
      while (offset < chunk.length) {
        const n = chunk.copy(piece, filled, offset)
        offset += n
        filled += n
        length -= n
        if (filled === piece.length) {
          this.outbox.push(piece)
          if (length > 0) piece = Buffer.allocUnsafe(Math.min(length, PIECE_LENGTH))
          filled = 0
        }
      }
    }
    this.held = callback
    this.scheduleFlush()
  }

  private queueEnd(): void {
    if (this.endQueued || this.blackholed) return
    this.endQueued = true
    this.outbox.push(null)
    this.scheduleFlush()
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return
    this.flushScheduled = true
    setImmediate(this.flush)
  }

  private readonly flush = (): void => {
    this.flushScheduled = false
    const peer = this.peer
    let room = true
    for (const item of this.outbox) {
      if (peer.destroyed || peer.eofReceived) break
      if (item === null) peer.eofReceived = true
      room = peer.push(item)
    }
    this.outbox = []
    if (room) this.release()
  }

  private release(): void {
    const callback = this.held
    this.held = undefined
    callback?.()
  }
}

/**
 * Two connected in-memory duplex streams: what one end writes, the other
 * reads, copied and delivered asynchronously, with backpressure (a writer
 * waits while the other end's reader is full). Build muxed connections on it
 * with `createMuxedConnection` for tests without sockets.
 */
export function createMemoryDuplexPair(): [Duplex, Duplex] {
  return MemoryDuplex.pair()
}
