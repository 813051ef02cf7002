// One yamux stream: a send side bounded by the remote's window, a receive side
// bounded by the window we grant, half-close (FIN) and reset (RST).
import {
  AbortedError,
  FrameTooLargeError,
  PeerTimeoutError,
  ProtocolError,
  StreamClosedError,
  StreamRefusedError,
  StreamResetError,
} from '../errors.js'
import type { AbortOptions, Stream } from '../types.js'
import { FLAG_ACK, FLAG_FIN, INITIAL_STREAM_WINDOW } from './frame.js'
import { abortable, throwIfAborted } from './signal.js'

/** What a stream needs from its connection. */
export interface StreamHost {
  /** Longest data frame to send. */
  readonly maxFrameSize: number
  /** Largest receive window a stream may grow to. */
  readonly maxStreamWindow: number
  /** `false` while the socket's write buffer is over its limit: data frames wait for `pump()`. */
  readonly writable: boolean
  sendData(stream: MuxedStream, flags: number, payload: Uint8Array): void
  sendWindowUpdate(stream: MuxedStream, flags: number, delta: number): void
  sendReset(stream: MuxedStream, flags: number): void
  /** Calls `stream.pump()` once the socket drains. */
  waitForDrain(stream: MuxedStream): void
  /** How many bytes the stream's window may grow by (at most `wanted`), within the connection's budget. */
  growWindow(wanted: number): number
  /** The stream is finished (both sides closed, or reset): forget it. */
  streamDone(stream: MuxedStream): void
}

interface Waiter<T> {
  resolve: (value: T) => void
  reject: (err: Error) => void
}

interface PendingWrite extends Waiter<void> {
  data: Uint8Array
  offset: number
}

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined }

/** Queues an entry built from `fields` in `queue` until it is resolved or rejected; on abort, takes it out and calls `onAbort`. */
async function waitIn<E extends Waiter<void>>(queue: E[], fields: Omit<E, 'resolve' | 'reject'>, signal: AbortSignal | undefined, onAbort?: () => void): Promise<void> {
  let entry: E | undefined
  await abortable<void>(
    signal,
    (resolve, reject) => {
      entry = { ...fields, resolve, reject } as E
      queue.push(entry)
    },
    () => {
      const at = entry === undefined ? -1 : queue.indexOf(entry)
      if (at >= 0) queue.splice(at, 1)
      onAbort?.()
    },
  )
}

/**
 * A stream of a muxed connection. Created by the connection; applications see
 * it as a {@link Stream}.
 */
export class MuxedStream implements Stream {
  /** Receive window currently granted to the remote (grows while the reader keeps up). */
  recvWindow = INITIAL_STREAM_WINDOW
  /** `true` once the connection forgot this stream. */
  removed = false
  /** What the connection granted beyond the initial window when the stream opened (see {@link takeInitialGrant}). */
  initialGrant = 0

  // Send side.
  private sendWindow = INITIAL_STREAM_WINDOW
  private readonly pendingWrites: PendingWrite[] = []
  private writeClosed = false
  private finSent = false
  private readonly finWaiters: Waiter<void>[] = []
  private ackPending: boolean

  // Receive side. Invariant: recvAvailable + payload in flight + buffered + uncredited = recvWindow.
  private recvAvailable = INITIAL_STREAM_WINDOW
  private uncredited = 0
  private buffered = 0
  private chunks: (Buffer | undefined)[] = []
  private head = 0
  private reader: Waiter<IteratorResult<Uint8Array>> | undefined
  private iterated = false
  private discarding = false
  private readEnded = false

  // Idle accounting: when bytes last moved, and since when the sweep saw us waiting on the remote.
  private lastProgress = performance.now()
  private waitingSince: number | undefined

  // Terminal state: reset by either side, or the connection died.
  private error: Error | undefined
  private readError: Error | undefined

  constructor(
    private readonly host: StreamHost,
    /** Stream id, unique within its connection. */
    readonly id: number,
    inbound: boolean,
  ) {
    this.ackPending = inbound
  }

  /** Bytes received and not yet read (for tests and accounting). */
  get bufferedBytes(): number {
    return this.buffered
  }

  async write(data: Uint8Array, options: AbortOptions = {}): Promise<void> {
    const { signal } = options
    throwIfAborted(signal)
    if (!(data instanceof Uint8Array)) throw new TypeError('stream.write() takes a Uint8Array')
    if (this.error !== undefined) throw this.error
    if (this.writeClosed) throw new StreamClosedError('write after closeWrite()')
    if (data.length === 0) return
    let offset = 0
    if (this.pendingWrites.length === 0) {
      offset = this.send(data, 0)
      if (offset === data.length) return
    }
    await waitIn(this.pendingWrites, { data, offset }, signal, () => {
      // Part of the bytes may be out already: the stream cannot go on.
      this.reset(new AbortedError('a write was aborted', { cause: signal?.reason }))
    })
  }

  async closeWrite(options: AbortOptions = {}): Promise<void> {
    const { signal } = options
    throwIfAborted(signal)
    if (this.finSent) return
    if (this.error !== undefined) throw this.error
    this.writeClosed = true
    if (this.pendingWrites.length === 0) {
      this.sendFin()
      return
    }
    // Aborting only stops the wait: the FIN still follows the pending writes.
    await waitIn(this.finWaiters, {}, signal)
  }

  reset(reason?: Error): void {
    if (this.error !== undefined) return
    if (!this.removed) this.host.sendReset(this, this.takeFlags(0))
    this.fail(new StreamResetError('the stream was reset locally', { cause: reason }), true)
    this.host.streamDone(this)
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    if (this.iterated) throw new StreamClosedError('a stream can be iterated only once')
    this.iterated = true
    return {
      next: () => this.next(),
      return: () => this.stopReading(),
    }
  }

  // --- called by the connection -------------------------------------------

  /**
   * Raises the receive window of a new stream by `grant` bytes (before anything was received),
   * which the connection took from its budget and announces to the remote.
   */
  takeInitialGrant(grant: number): void {
    this.initialGrant += grant
    this.recvWindow += grant
    this.recvAvailable += grant
  }

  /** Acknowledges a new inbound stream at once with a window update of `delta`. */
  acknowledge(delta: number): void {
    this.host.sendWindowUpdate(this, this.takeFlags(0), delta)
  }

  /** A data frame header for this stream: claims `length` bytes of the window granted. */
  beginData(length: number): void {
    if (this.readEnded && length > 0) throw new ProtocolError(`data on stream ${this.id} after its FIN`)
    if (length > this.recvAvailable) {
      throw new FrameTooLargeError(`a data frame of ${length} bytes on stream ${this.id} exceeds the window granted (${this.recvAvailable})`)
    }
    this.recvAvailable -= length
  }

  /** A piece of payload (a view of the socket's chunk, not copied). */
  receive(piece: Buffer): void {
    this.lastProgress = performance.now()
    if (this.readError !== undefined) return
    if (this.discarding) {
      this.credit(piece.length)
      return
    }
    const reader = this.reader
    if (reader !== undefined) {
      this.reader = undefined
      this.credit(piece.length)
      reader.resolve({ done: false, value: piece })
      return
    }
    this.chunks.push(piece)
    this.buffered += piece.length
  }

  /** The remote half-closed. */
  remoteFin(): void {
    if (this.readEnded) return
    this.readEnded = true
    this.lastProgress = performance.now()
    const reader = this.reader
    if (reader !== undefined) {
      this.reader = undefined
      reader.resolve(DONE)
    }
    this.checkDone()
  }

  /** The remote reset the stream; `refused`: it refused it without processing any of it. */
  remoteReset(refused: boolean): void {
    if (this.error !== undefined) return
    this.fail(refused ? new StreamRefusedError() : new StreamResetError('the stream was reset by the remote'), true)
    this.host.streamDone(this)
  }

  /**
   * Called by the connection a few times per `idle` ms: a stream that has waited on the
   * remote (a pending read, or writes the remote's window or socket holds back) with no
   * byte moving for `idle` ms fails with `ERR_PEER_TIMEOUT` and is reset.
   */
  checkIdle(now: number, idle: number): void {
    const waiting = this.reader !== undefined || this.pendingWrites.length > 0 || this.finWaiters.length > 0
    if (!waiting || this.error !== undefined) {
      this.waitingSince = undefined
      return
    }
    this.waitingSince ??= now
    if (now - Math.max(this.waitingSince, this.lastProgress) < idle) return
    if (!this.removed) this.host.sendReset(this, this.takeFlags(0))
    this.fail(new PeerTimeoutError(`the remote moved no byte of stream ${this.id} for ${idle} ms (streamIdleTimeout)`), true)
    this.host.streamDone(this)
  }

  /** The remote granted `delta` more bytes. */
  grantWindow(delta: number): void {
    const window = this.sendWindow + delta
    if (window > 0xffffffff) throw new ProtocolError(`a window update overflows the send window of stream ${this.id}`)
    this.sendWindow = window
    this.lastProgress = performance.now()
    this.pump()
  }

  /** Sends what the window and the socket allow of the pending writes, then a pending FIN. */
  pump(): void {
    while (this.pendingWrites.length > 0) {
      const entry = this.pendingWrites[0]!
      entry.offset = this.send(entry.data, entry.offset)
      if (entry.offset < entry.data.length) return
      this.pendingWrites.shift()
      entry.resolve()
    }
    if (this.writeClosed && !this.finSent && this.error === undefined) this.sendFin()
  }

  /**
   * The stream died. Writes fail with `error`; reads fail too, unless the read
   * side had already ended and `discardRead` is false (its bytes stay readable).
   */
  fail(error: Error, discardRead: boolean): void {
    if (this.error !== undefined) return
    this.error = error
    for (const entry of this.pendingWrites.splice(0)) entry.reject(error)
    for (const waiter of this.finWaiters.splice(0)) waiter.reject(error)
    if (!this.readEnded || discardRead) {
      this.readError = error
      this.dropChunks()
      const reader = this.reader
      this.reader = undefined
      reader?.reject(error)
    }
  }

  // --- internals -------------------------------------------------------------

  private send(data: Uint8Array, offset: number): number {
    const host = this.host
    const end = data.length
    while (offset < end) {
      if (this.sendWindow === 0) return offset
      if (!host.writable) {
        host.waitForDrain(this)
        return offset
      }
      const n = Math.min(end - offset, this.sendWindow, host.maxFrameSize)
      host.sendData(this, this.takeFlags(0), n === end ? data : data.subarray(offset, offset + n))
      this.sendWindow -= n
      offset += n
    }
    return offset
  }

  private sendFin(): void {
    this.finSent = true
    this.host.sendWindowUpdate(this, this.takeFlags(FLAG_FIN), 0)
    for (const waiter of this.finWaiters.splice(0)) waiter.resolve()
    this.checkDone()
  }

  /** The first frame we send on an inbound stream acknowledges it. */
  private takeFlags(flags: number): number {
    if (!this.ackPending) return flags
    this.ackPending = false
    return flags | FLAG_ACK
  }

  private checkDone(): void {
    if (this.finSent && this.readEnded && !this.removed) this.host.streamDone(this)
  }

  private next(): Promise<IteratorResult<Uint8Array>> {
    if (this.readError !== undefined) return Promise.reject(this.readError)
    if (this.buffered > 0) {
      const chunk = this.chunks[this.head]!
      this.chunks[this.head++] = undefined
      if (this.head === this.chunks.length) {
        this.chunks = []
        this.head = 0
      }
      this.buffered -= chunk.length
      this.credit(chunk.length)
      return Promise.resolve({ done: false, value: chunk })
    }
    if (this.readEnded || this.discarding) return Promise.resolve(DONE)
    if (this.reader !== undefined) return Promise.reject(new StreamClosedError('a read is already pending on this stream'))
    return new Promise((resolve, reject) => {
      this.reader = { resolve, reject }
    })
  }

  /** Leaving the iteration early: the rest is discarded, and credited so the remote is not held back. */
  private stopReading(): Promise<IteratorResult<Uint8Array>> {
    if (!this.discarding && !this.readEnded && this.readError === undefined) {
      this.discarding = true
      const dropped = this.buffered
      this.dropChunks()
      this.credit(dropped)
    } else {
      this.dropChunks()
    }
    const reader = this.reader
    this.reader = undefined
    reader?.resolve(DONE)
    return Promise.resolve(DONE)
  }

  private dropChunks(): void {
    this.chunks = []
    this.head = 0
    this.buffered = 0
  }

  /**
   * `n` bytes left our buffer. Once half the window is free again, tell the
   * remote; if the reader had caught up (nothing buffered), the window was the
   * bottleneck, so grant a doubled window (up to the maximum and the budget).
   */
  private credit(n: number): void {
    this.uncredited += n
    if (this.uncredited < this.recvWindow >>> 1 || this.readEnded || this.removed) return
    let delta = this.uncredited
    if (this.buffered === 0 && !this.discarding && this.recvWindow < this.host.maxStreamWindow) {
      const growth = this.host.growWindow(Math.min(this.recvWindow, this.host.maxStreamWindow - this.recvWindow))
      this.recvWindow += growth
      delta += growth
    }
    this.uncredited = 0
    this.recvAvailable += delta
    this.host.sendWindowUpdate(this, this.takeFlags(0), delta)
  }
}
