// The yamux session: frames from the socket go to their streams; streams' frames
// go to the socket, copied into reused send buffers and written once per tick (or
// whenever a buffer fills), held back while the socket is full.
import { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import {
  ConnectionClosedError,
  P2PError,
  PeerTimeoutError,
  ProtocolError,
  StreamClosedError,
  TooManyStreamsError,
} from '../errors.js'
import type { AbortOptions, Connection, Stream } from '../types.js'
import {
  FLAG_ACK,
  FLAG_FIN,
  FLAG_RST,
  FLAG_SYN,
  FrameDecoder,
  GO_AWAY_INTERNAL_ERROR,
  GO_AWAY_NORMAL,
  GO_AWAY_PROTOCOL_ERROR,
  INITIAL_STREAM_WINDOW,
  RESET_REFUSED,
  TYPE_DATA,
  TYPE_GO_AWAY,
  TYPE_PING,
  TYPE_WINDOW_UPDATE,
  HEADER_LENGTH,
  INITIAL_STREAM_GRANT,
  writeHeader,
  type FrameSink,
} from './frame.js'
import { MuxedStream, type StreamHost } from './stream.js'
import { abortable, abortedError, throwIfAborted } from './signal.js'
import type { MuxerOptions } from './types.js'

/** Defaults of {@link MuxerOptions}. */
export const MUXER_DEFAULTS = {
  maxStreams: 256,
  keepAliveInterval: 10_000,
  deadPeerTimeout: 30_000,
  maxStreamWindow: 16 * 1024 * 1024,
  maxConnectionWindow: 64 * 1024 * 1024,
  streamIdleTimeout: 30_000,
} as const

/** Longest data frame we send. */
const MAX_FRAME_SIZE = 256 * 1024
/** Data frames wait once this many bytes sit in the socket's write buffer. */
const SEND_BUFFER_LIMIT = 1024 * 1024
/**
 * Frames are copied into send buffers of this size, each written in one call: a TLS socket
 * then seals it as full records without first joining pieces into a fresh allocation of its own.
 */
const SEND_CHUNK = 256 * 1024
/** How long (ms) a closed connection's socket may take to write out its last frames before it is destroyed. */
const CLOSE_LINGER = 1000
/** Written send buffers kept for reuse (over sockets that copy what they are given). */
const SEND_CHUNKS_KEPT = 6
/**
 * The initial grants of the streams open hold at most this share of maxConnectionWindow (an
 * eighth: ten 1 MiB grants with the default 64 MiB), so they never take the room of many
 * streams' initial windows.
 */
const GRANT_SHARE = 8
/** Reading pauses while answers to the remote's frames (ping echoes, refusals) pile up beyond this (a peer that never reads). */
const CONTROL_BACKLOG_LIMIT = 4 * SEND_BUFFER_LIMIT

const OPEN = 0
const CLOSED = 1

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined }

function positiveInteger(name: string, value: number | undefined, fallback: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer between ${min} and ${max}, got ${value}`)
  }
  return value
}

/** Protocol violations close the connection with a go-away carrying the protocol-error code. */
function isProtocolViolation(error: Error): boolean {
  const code = (error as Partial<P2PError>).code
  return code === 'ERR_PROTOCOL' || code === 'ERR_FRAME_TOO_LARGE' || code === 'ERR_TOO_MANY_STREAMS'
}

class MuxedConnection implements Connection, StreamHost, FrameSink {
  readonly remoteNodeId: string
  readonly remoteAddress: string
  readonly direction: 'inbound' | 'outbound'
  readonly closed: Promise<Error | undefined>
  readonly incoming: AsyncIterable<Stream>

  readonly maxFrameSize = MAX_FRAME_SIZE
  readonly maxStreamWindow: number
  private readonly maxConnectionWindow: number
  private readonly maxStreams: number
  private readonly deadPeerTimeout: number
  private readonly streamIdleTimeout: number

  private state = OPEN
  private error: Error | undefined
  private remoteError: Error | undefined
  private resolveClosed!: (error: Error | undefined) => void

  private readonly streams = new Map<number, MuxedStream>()
  private nextId: number
  private lastRemoteId = 0
  private inboundCount = 0
  private outboundCount = 0
  /** Receive windows of every open stream, initial ones included: at most maxConnectionWindow. */
  private totalRecvWindow = 0
  /** The part of it that grew beyond the initial windows: at most half of maxConnectionWindow. */
  private grownRecvWindow = 0
  /** The part of that growth given as initial grants (INITIAL_STREAM_GRANT): at most maxConnectionWindow / GRANT_SHARE. */
  private grantedRecvWindow = 0

  private goAwaySent = false
  private goAwayReceived = false
  private writeEnded = false
  private writeFinished = false
  private remoteEnded = false

  private readonly incomingQueue = new Set<MuxedStream>()
  private readonly incomingWaiters: ((result: IteratorResult<Stream>) => void)[] = []
  private incomingIterated = false

  private readonly decoder: FrameDecoder
  private current: MuxedStream | undefined
  private currentFin = false

  /** The send buffer being filled, and how much of it is. */
  private out: Buffer | undefined
  private outFilled = 0
  private flushScheduled = false
  /** Filled send buffers waiting for the socket, which gets one at a time (see {@link pumpWrites}). */
  private readonly sendQueue: Array<{ chunk: Buffer; length: number }> = []
  private queuedBytes = 0
  private writing = false
  private readonly spareChunks: Buffer[] = []
  /** Whether the socket is done with a buffer once its write callback ran (TCP, TLS), so it can be reused. */
  private readonly socketCopies: boolean
  private blocked = false
  private readPaused = false
  private readonly sendBufferLimit: number
  private readonly drainWaiters = new Set<MuxedStream>()

  private lastReceivedAt = performance.now()
  private pingId = 0
  private readonly pingTimer: NodeJS.Timeout
  private deadTimer: NodeJS.Timeout | undefined
  private readonly idleTimer: NodeJS.Timeout

  constructor(
    private readonly socket: Duplex,
    options: MuxerOptions,
  ) {
    if (options.direction !== 'inbound' && options.direction !== 'outbound') {
      throw new TypeError(`direction must be 'inbound' or 'outbound', got ${String(options.direction)}`)
    }
    this.direction = options.direction
    this.remoteNodeId = options.remoteNodeId
    this.remoteAddress = options.remoteAddress
    this.maxStreams = positiveInteger('maxStreams', options.maxStreams, MUXER_DEFAULTS.maxStreams)
    const keepAliveInterval = positiveInteger('keepAliveInterval', options.keepAliveInterval, MUXER_DEFAULTS.keepAliveInterval)
    this.deadPeerTimeout = positiveInteger('deadPeerTimeout', options.deadPeerTimeout, MUXER_DEFAULTS.deadPeerTimeout, 2)
    this.maxStreamWindow = positiveInteger('maxStreamWindow', options.maxStreamWindow, MUXER_DEFAULTS.maxStreamWindow, INITIAL_STREAM_WINDOW, 0xffffffff)
    this.maxConnectionWindow = positiveInteger('maxConnectionWindow', options.maxConnectionWindow, MUXER_DEFAULTS.maxConnectionWindow, 2 * INITIAL_STREAM_WINDOW)
    this.streamIdleTimeout = positiveInteger('streamIdleTimeout', options.streamIdleTimeout, MUXER_DEFAULTS.streamIdleTimeout, 2)
    // The dialler is yamux's client: odd ids; the listener even ones.
    this.nextId = this.direction === 'outbound' ? 1 : 2
    this.sendBufferLimit = Math.max(SEND_BUFFER_LIMIT, socket.writableHighWaterMark)
    this.socketCopies = socket instanceof Socket
    this.decoder = new FrameDecoder(this, this.maxStreamWindow)
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve
    })
    this.incoming = { [Symbol.asyncIterator]: () => this.acceptIterator() }

    socket.on('data', this.onData)
    socket.on('end', this.onEnd)
    socket.on('finish', this.onFinish)
    socket.on('error', this.onError)
    socket.on('close', this.onClose)
    socket.on('drain', this.onDrain)

    // Ping often enough that a live peer always answers within the dead-peer timeout.
    const pingEvery = Math.max(1, Math.min(keepAliveInterval, Math.floor(this.deadPeerTimeout / 2)))
    this.pingTimer = setInterval(this.ping, pingEvery).unref()
    this.deadTimer = setTimeout(this.checkAlive, this.deadPeerTimeout).unref()
    // Streams waiting on the remote are checked a few times per idle timeout.
    this.idleTimer = setInterval(this.checkIdleStreams, Math.max(1, Math.floor(this.streamIdleTimeout / 4))).unref()

    if (socket.destroyed || !socket.readable) this.abort(new ConnectionClosedError('the socket was already closed'))
  }

  get open(): boolean {
    return this.state === OPEN && !this.goAwaySent && !this.goAwayReceived
  }

  get writable(): boolean {
    return !this.blocked
  }

  openStream(options: AbortOptions = {}): Promise<Stream> {
    // Opening needs no round trip (yamux sends data right after the SYN): settle at once.
    return new Promise((resolve) => resolve(this.openStreamNow(options)))
  }

  private openStreamNow(options: AbortOptions): MuxedStream {
    throwIfAborted(options.signal)
    if (this.state !== OPEN) throw new ConnectionClosedError('the connection is closed', { cause: this.error })
    if (this.goAwaySent || this.goAwayReceived) throw new ConnectionClosedError('the connection is closing (go-away)')
    if (this.outboundCount >= this.maxStreams) {
      throw new TooManyStreamsError(`already ${this.outboundCount} streams open to the remote (maxStreams)`)
    }
    if (!this.budgetAllowsStream()) {
      throw new TooManyStreamsError(`the receive windows of this connection's streams already fill its budget (maxConnectionWindow ${this.maxConnectionWindow})`)
    }
    if (this.nextId > 0xffffffff) throw new TooManyStreamsError('stream ids of this connection are exhausted')
    const id = this.nextId
    this.nextId += 2
    const stream = this.addStream(id, false)
    // The SYN grants the answer a window above yamux's initial one at once, from the connection's budget.
    this.sendControl(TYPE_WINDOW_UPDATE, FLAG_SYN, id, this.grantInitialWindow(stream))
    return stream
  }

  async close(options: AbortOptions = {}): Promise<void> {
    const { signal } = options
    throwIfAborted(signal)
    if (this.state === OPEN && !this.goAwaySent) {
      this.goAwaySent = true
      this.sendControl(TYPE_GO_AWAY, 0, 0, GO_AWAY_NORMAL)
      this.wakeIncoming()
      this.maybeEnd()
    }
    if (this.state !== OPEN) return
    await abortable<unknown>(
      signal,
      (resolve) => void this.closed.then(resolve),
      () => this.abort(abortedError(signal!)),
    )
  }

  abort(reason?: Error): void {
    if (this.state !== OPEN) return
    const error = reason instanceof P2PError ? reason : new ConnectionClosedError('the connection was aborted', { cause: reason })
    if (!this.writeEnded) {
      this.sendControl(TYPE_GO_AWAY, 0, 0, isProtocolViolation(error) ? GO_AWAY_PROTOCOL_ERROR : GO_AWAY_INTERNAL_ERROR)
    }
    this.finish(error)
  }

  // --- StreamHost ------------------------------------------------------------

  sendData(stream: MuxedStream, flags: number, payload: Uint8Array): void {
    this.emitHeader(TYPE_DATA, flags, stream.id, payload.length)
    this.emit(payload)
    if (this.pendingBytes() >= this.sendBufferLimit) this.blocked = true
  }

  /** Bytes written by streams and not yet taken by the socket's peer (our send buffers and the socket's own). */
  pendingBytes(): number {
    return this.outFilled + this.queuedBytes + this.socket.writableLength
  }

  sendWindowUpdate(stream: MuxedStream, flags: number, delta: number): void {
    this.sendControl(TYPE_WINDOW_UPDATE, flags, stream.id, delta)
  }

  sendReset(stream: MuxedStream, flags: number): void {
    this.sendControl(TYPE_WINDOW_UPDATE, flags | FLAG_RST, stream.id, 0)
  }

  waitForDrain(stream: MuxedStream): void {
    this.drainWaiters.add(stream)
  }

  growWindow(wanted: number): number {
    const growth = Math.max(0, Math.min(wanted, this.growthRoom()))
    this.totalRecvWindow += growth
    this.grownRecvWindow += growth
    return growth
  }

  streamDone(stream: MuxedStream): void {
    if (stream.removed) return
    stream.removed = true
    if (this.streams.get(stream.id) !== stream) return
    this.streams.delete(stream.id)
    this.incomingQueue.delete(stream)
    this.drainWaiters.delete(stream)
    if (this.isRemoteId(stream.id)) this.inboundCount--
    else this.outboundCount--
    this.totalRecvWindow -= stream.recvWindow
    this.grownRecvWindow -= stream.recvWindow - INITIAL_STREAM_WINDOW
    this.grantedRecvWindow -= stream.initialGrant
    this.maybeEnd()
  }

  // --- FrameSink -------------------------------------------------------------

  frame(type: number, flags: number, streamId: number, length: number): void {
    if (type === TYPE_DATA || type === TYPE_WINDOW_UPDATE) {
      this.streamFrame(type, flags, streamId, length)
    } else if (type === TYPE_PING) {
      // Any frame proves the peer alive; a ping asks for an echo.
      if (flags === FLAG_SYN) this.answer(TYPE_PING, FLAG_ACK, 0, length)
    } else {
      this.remoteGoAway(length)
    }
  }

  data(piece: Buffer): void {
    this.current?.receive(piece)
  }

  dataEnd(): void {
    const stream = this.current
    this.current = undefined
    if (stream !== undefined && this.currentFin) stream.remoteFin()
  }

  // --- internals ---------------------------------------------------------------

  private isRemoteId(id: number): boolean {
    return (id & 1) === (this.direction === 'outbound' ? 0 : 1)
  }

  /** Whether one more stream's initial window fits in the connection's receive budget. */
  private budgetAllowsStream(): boolean {
    return this.totalRecvWindow + INITIAL_STREAM_WINDOW <= this.maxConnectionWindow
  }

  /** How much windows may still grow: growth takes half the budget at most, the other half stays for new streams' initial windows. */
  private growthRoom(): number {
    return Math.min(this.maxConnectionWindow - this.totalRecvWindow, Math.floor(this.maxConnectionWindow / 2) - this.grownRecvWindow)
  }

  /**
   * Raises a new stream's receive window to {@link INITIAL_STREAM_GRANT} (capped by
   * maxStreamWindow) if the grants of open streams stay within 1/GRANT_SHARE of the budget and
   * growth within its half; otherwise it keeps yamux's initial window. Returns the growth, for the
   * stream's first frame. So streams' initial windows always find half the budget, and at
   * least seven eighths of it while no window grew by reading (226 streams with the defaults).
   */
  private grantInitialWindow(stream: MuxedStream): number {
    const grant = Math.min(INITIAL_STREAM_GRANT, this.maxStreamWindow) - stream.recvWindow
    if (grant <= 0) return 0
    if (this.grantedRecvWindow + grant > Math.floor(this.maxConnectionWindow / GRANT_SHARE) || grant > this.growthRoom()) return 0
    this.totalRecvWindow += grant
    this.grownRecvWindow += grant
    this.grantedRecvWindow += grant
    stream.takeInitialGrant(grant)
    return grant
  }

  private addStream(id: number, inbound: boolean): MuxedStream {
    const stream = new MuxedStream(this, id, inbound)
    this.streams.set(id, stream)
    if (inbound) this.inboundCount++
    else this.outboundCount++
    this.totalRecvWindow += stream.recvWindow
    return stream
  }

  private streamFrame(type: number, flags: number, id: number, length: number): void {
    let stream = this.streams.get(id)
    const remoteId = this.isRemoteId(id)
    if ((flags & FLAG_SYN) !== 0) {
      if (!remoteId) throw new ProtocolError(`the remote opened stream ${id}, an id of ours`)
      if (id <= this.lastRemoteId) throw new ProtocolError(`the remote opened stream ${id} again, or out of order`)
      this.lastRemoteId = id
      if (this.goAwayReceived) throw new ProtocolError('the remote opened a stream after its go-away')
      if (this.goAwaySent || this.inboundCount >= this.maxStreams || !this.budgetAllowsStream()) {
        // It crossed our go-away, or would exceed maxStreams or the receive budget: refuse it
        // (a typed reset the remote sees as ERR_STREAM_REFUSED), nothing of it is kept.
        stream = undefined
        this.answer(TYPE_WINDOW_UPDATE, FLAG_RST, id, RESET_REFUSED)
      } else {
        stream = this.addStream(id, true)
        // Acknowledged at once, with a window above yamux's initial one for the opener's request body.
        const grant = this.grantInitialWindow(stream)
        if (grant > 0) stream.acknowledge(grant)
        this.enqueueIncoming(stream)
      }
    } else if (stream === undefined) {
      const neverOpened = remoteId ? id > this.lastRemoteId : id >= this.nextId
      if (neverOpened) throw new ProtocolError(`a frame for stream ${id}, which was never opened`)
      // Otherwise a frame in flight for a stream already finished or reset: ignored.
    }
    if (type === TYPE_DATA) {
      this.current = undefined
      if (stream === undefined) return
      if ((flags & FLAG_RST) !== 0) {
        stream.remoteReset(false)
        return
      }
      stream.beginData(length)
      this.current = stream
      this.currentFin = (flags & FLAG_FIN) !== 0
      return
    }
    if (stream === undefined) return
    if ((flags & FLAG_RST) !== 0) {
      stream.remoteReset(length === RESET_REFUSED)
      return
    }
    if (length > 0) stream.grantWindow(length)
    if ((flags & FLAG_FIN) !== 0) stream.remoteFin()
  }

  private remoteGoAway(code: number): void {
    // A second go-away may follow a normal one: the remote then aborted.
    if (this.goAwayReceived && code === GO_AWAY_NORMAL) return
    this.goAwayReceived = true
    if (code === GO_AWAY_PROTOCOL_ERROR) {
      this.remoteError = new ProtocolError('the remote closed the connection over a protocol error')
    } else if (code !== GO_AWAY_NORMAL) {
      this.remoteError = new ConnectionClosedError(`the remote closed the connection with error code ${code}`)
    }
    this.wakeIncoming()
    this.maybeEnd()
  }

  /**
   * Sends a frame that answers one of the remote's; reading pauses (until the socket drains)
   * while such answers pile up unread, so a remote that sends and never reads cannot grow them.
   */
  private answer(type: number, flags: number, id: number, length: number): void {
    this.sendControl(type, flags, id, length)
    if (this.pendingBytes() > CONTROL_BACKLOG_LIMIT && !this.readPaused) {
      this.readPaused = true
      this.socket.pause()
    }
  }

  private sendControl(type: number, flags: number, id: number, length: number): void {
    if (this.writeEnded || this.state !== OPEN) return
    this.emitHeader(type, flags, id, length)
  }

  /** Appends a frame header to the send buffer. */
  private emitHeader(type: number, flags: number, id: number, length: number): void {
    if (this.out === undefined || SEND_CHUNK - this.outFilled < HEADER_LENGTH) this.nextChunk()
    writeHeader(this.out!, this.outFilled, type, flags, id, length)
    this.outFilled += HEADER_LENGTH
    this.scheduleFlush()
  }

  /** Appends bytes to the send buffer, writing each buffer that fills. */
  private emit(bytes: Uint8Array): void {
    let at = 0
    while (at < bytes.length) {
      if (this.out === undefined || this.outFilled === SEND_CHUNK) this.nextChunk()
      const n = Math.min(SEND_CHUNK - this.outFilled, bytes.length - at)
      this.out!.set(n === bytes.length ? bytes : bytes.subarray(at, at + n), this.outFilled)
      this.outFilled += n
      at += n
    }
    this.scheduleFlush()
  }

  /** Writes the current send buffer (if any) and starts another. */
  private nextChunk(): void {
    this.flush()
    this.out = this.spareChunks.pop() ?? Buffer.allocUnsafeSlow(SEND_CHUNK)
    this.outFilled = 0
  }

  /** Frames written in the same tick leave in one write. */
  private scheduleFlush(): void {
    if (this.flushScheduled) return
    this.flushScheduled = true
    process.nextTick(this.flushNow)
  }

  private readonly flushNow = (): void => {
    this.flushScheduled = false
    this.flush()
  }

  /** Queues the filled part of the send buffer for the socket. */
  private flush(): void {
    const chunk = this.out
    const length = this.outFilled
    if (chunk === undefined || length === 0) return
    this.out = undefined
    this.outFilled = 0
    this.sendQueue.push({ chunk, length })
    this.queuedBytes += length
    this.pumpWrites()
  }

  /**
   * Gives the socket the next send buffer once it took the previous one: each write is then a
   * single buffer, which a TLS socket seals in place (given several, it would first copy them
   * all into a new allocation of their total size).
   */
  private pumpWrites(): void {
    if (this.writing) return
    const next = this.sendQueue.shift()
    if (next === undefined) return
    const { chunk, length } = next
    if (this.socket.destroyed || this.socket.writableEnded) {
      this.sendQueue.length = 0
      this.queuedBytes = 0
      return
    }
    this.writing = true
    const done = (err?: Error | null): void => {
      this.writing = false
      this.queuedBytes -= length
      // Written (or failed): the socket no longer holds it.
      if (err == null && this.spareChunks.length < SEND_CHUNKS_KEPT) this.spareChunks.push(chunk)
      if (err != null) return
      this.pumpWrites()
      this.onDrain()
    }
    if (this.socketCopies) {
      this.socket.write(chunk.subarray(0, length), done)
    } else {
      // A duplex that may hand our bytes on as they are (the in-memory pair): give it bytes of its own.
      this.socket.write(Buffer.from(chunk.subarray(0, length)), done)
    }
  }

  /** Hands every queued byte to the socket at once (before it ends). */
  private flushAll(): void {
    this.flush()
    if (this.socket.destroyed || this.socket.writableEnded) return
    for (const { chunk, length } of this.sendQueue.splice(0)) {
      this.socket.write(Buffer.from(chunk.subarray(0, length)))
      this.queuedBytes -= length
    }
  }

  /** After a go-away, once no stream is left, the connection ends. */
  private maybeEnd(): void {
    if (this.state !== OPEN || this.streams.size > 0 || !(this.goAwaySent || this.goAwayReceived)) return
    if (!this.writeEnded) {
      this.writeEnded = true
      this.flushAll()
      if (!this.socket.writableEnded) this.socket.end()
      else if (this.socket.writableFinished) this.writeFinished = true
    }
    this.finishIfEnded()
  }

  private finishIfEnded(): void {
    if (this.remoteEnded && this.writeFinished && this.state === OPEN) {
      if (this.decoder.atFrameBoundary) this.finish(this.remoteError)
      else this.finish(new ProtocolError('the connection ended in the middle of a frame'))
    }
  }

  private acceptIterator(): AsyncIterator<Stream> {
    if (this.incomingIterated) throw new StreamClosedError('incoming can be iterated only once')
    this.incomingIterated = true
    return {
      next: () => this.nextIncoming(),
      return: () => Promise.resolve(DONE),
    }
  }

  private nextIncoming(): Promise<IteratorResult<Stream>> {
    for (const stream of this.incomingQueue) {
      this.incomingQueue.delete(stream)
      return Promise.resolve({ done: false, value: stream })
    }
    if (this.state !== OPEN || this.goAwaySent || this.goAwayReceived) return Promise.resolve(DONE)
    return new Promise((resolve) => {
      this.incomingWaiters.push(resolve)
    })
  }

  private enqueueIncoming(stream: MuxedStream): void {
    const waiter = this.incomingWaiters.shift()
    if (waiter === undefined) this.incomingQueue.add(stream)
    else waiter({ done: false, value: stream })
  }

  /** No stream will arrive any more: waiting `incoming` iterations end. */
  private wakeIncoming(): void {
    for (const waiter of this.incomingWaiters.splice(0)) waiter(DONE)
  }

  private finish(error: Error | undefined): void {
    if (this.state !== OPEN) return
    this.state = CLOSED
    this.error = error
    clearInterval(this.pingTimer)
    clearInterval(this.idleTimer)
    clearTimeout(this.deadTimer)
    const streamError = error ?? new ConnectionClosedError('the connection closed')
    for (const stream of this.streams.values()) {
      stream.removed = true
      stream.fail(streamError, false)
    }
    this.streams.clear()
    this.incomingQueue.clear()
    this.drainWaiters.clear()
    this.inboundCount = 0
    this.outboundCount = 0
    this.wakeIncoming()
    this.flushAll()
    this.release()
    this.resolveClosed(error)
  }

  /**
   * Lets go of the socket. Frames still queued in it (a go-away behind an earlier write) may
   * leave first, within {@link CLOSE_LINGER} ms; whatever arrives meanwhile is ignored.
   */
  private release(): void {
    const socket = this.socket
    if (socket.destroyed) return
    if (socket.writableLength === 0 || socket.writableEnded) {
      socket.destroy()
      return
    }
    const timer = setTimeout(() => socket.destroy(), CLOSE_LINGER).unref()
    socket.once('close', () => clearTimeout(timer))
    socket.once('finish', () => socket.destroy())
    socket.end()
  }

  private readonly onData = (chunk: Buffer | string): void => {
    if (this.state !== OPEN) return
    this.lastReceivedAt = performance.now()
    if (typeof chunk === 'string') {
      this.abort(new ProtocolError('the socket delivers strings: do not set an encoding on it'))
      return
    }
    try {
      this.decoder.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from((chunk as Uint8Array).buffer, (chunk as Uint8Array).byteOffset, (chunk as Uint8Array).byteLength))
    } catch (err) {
      this.abort(err instanceof P2PError ? err : new ProtocolError('the frame could not be processed', { cause: err }))
    }
  }

  private readonly onEnd = (): void => {
    this.remoteEnded = true
    if (this.state !== OPEN) return
    if (this.streams.size === 0 && (this.goAwaySent || this.goAwayReceived)) {
      this.maybeEnd()
    } else {
      this.abort(this.remoteError ?? new ConnectionClosedError('the remote closed the connection'))
    }
  }

  private readonly onFinish = (): void => {
    this.writeFinished = true
    this.finishIfEnded()
  }

  private readonly onError = (err: Error): void => {
    this.abort(err instanceof P2PError ? err : new ConnectionClosedError('the connection failed', { cause: err }))
  }

  private readonly onClose = (): void => {
    if (this.state !== OPEN) return
    this.abort(this.remoteError ?? new ConnectionClosedError('the connection closed'))
  }

  /** The socket (or our queue in front of it) took bytes: paused reading and waiting writers may go on. */
  private readonly onDrain = (): void => {
    if (this.pendingBytes() >= this.sendBufferLimit) return
    if (this.readPaused) {
      this.readPaused = false
      this.socket.resume()
    }
    if (!this.blocked) return
    this.blocked = false
    for (const stream of this.drainWaiters) {
      if (this.blocked) break
      this.drainWaiters.delete(stream)
      stream.pump()
    }
  }

  private readonly ping = (): void => {
    this.pingId = (this.pingId + 1) >>> 0
    this.sendControl(TYPE_PING, FLAG_SYN, 0, this.pingId)
  }

  private readonly checkIdleStreams = (): void => {
    const now = performance.now()
    for (const stream of [...this.streams.values()]) stream.checkIdle(now, this.streamIdleTimeout)
  }

  private readonly checkAlive = (): void => {
    this.deadTimer = undefined
    if (this.state !== OPEN) return
    const idle = performance.now() - this.lastReceivedAt
    if (idle < this.deadPeerTimeout) {
      this.deadTimer = setTimeout(this.checkAlive, Math.ceil(this.deadPeerTimeout - idle)).unref()
      return
    }
    // Bytes may be waiting in the socket behind a busy event loop: read them first.
    setImmediate(() => {
      if (this.state !== OPEN) return
      if (performance.now() - this.lastReceivedAt < this.deadPeerTimeout) {
        this.checkAlive()
        return
      }
      this.abort(new PeerTimeoutError(`the remote sent nothing for ${this.deadPeerTimeout} ms`))
    })
  }
}

/**
 * Runs the yamux multiplexer over an authenticated byte duplex (a TLS socket
 * after admission, or one end of an in-memory pair) and returns the
 * {@link Connection}. From then on the duplex belongs to the connection.
 *
 * Streams follow the yamux specification: 12-byte frame headers; odd stream
 * ids for the `outbound` side and even for the `inbound` one; a receive
 * window per stream of 256 KiB, raised at once to 1 MiB while the grants of
 * open streams fit in an eighth of `maxConnectionWindow`, that doubles, up to
 * `maxStreamWindow`, while its reader keeps up; half-close (FIN), reset (RST),
 * go-away on `close()`, and keep-alive pings with a dead-peer timeout. Every
 * frame read is checked; a malformed one closes the connection with a typed
 * error (`ERR_PROTOCOL`, `ERR_FRAME_TOO_LARGE`). What the remote can make us
 * hold is bounded: at most
 * `maxStreams` streams it opened (more are refused, `ERR_STREAM_REFUSED` on its
 * side), and every receive window, initial ones included, within
 * `maxConnectionWindow`; a stream waiting on the remote for `streamIdleTimeout`
 * fails with `ERR_PEER_TIMEOUT` and is reset.
 *
 * A buffer passed to `stream.write()` must not change until the write has
 * resolved. Read chunks are views of the socket's buffers.
 *
 * @example
 * ```ts
 * const connection = createMuxedConnection(tlsSocket, {
 *   direction: 'outbound',
 *   remoteNodeId,
 *   remoteAddress: '10.0.0.2:7000',
 * })
 * const stream = await connection.openStream()
 * await stream.write(new TextEncoder().encode('hello'))
 * await stream.closeWrite()
 * ```
 */
export function createMuxedConnection(socket: Duplex, options: MuxerOptions): Connection {
  return new MuxedConnection(socket, options)
}
