// Shared by the muxer tests: connected pairs, and a raw peer that speaks frames by hand.
import type { Duplex } from 'node:stream'
import { afterEach } from 'vitest'
import { createMemoryDuplexPair, createMuxedConnection, type Connection, type MuxerOptions, type Stream } from '../src/index.js'
import { encodeHeader, FrameDecoder, TYPE_DATA } from '../src/muxer/frame.js'
import type { MuxedStream } from '../src/muxer/stream.js'

export const DIALLER_ID = 'a'.repeat(64)
export const LISTENER_ID = 'b'.repeat(64)

type Options = Omit<MuxerOptions, 'direction' | 'remoteNodeId' | 'remoteAddress'>

type Kept = Connection | { dialler: Connection; listener: Connection }

/** Returns `track(item)`: the connection, or both of a pair, is aborted after each test of the file. */
export function abortedAfterEach(): <T extends Kept>(item: T) => T {
  const open: Connection[] = []
  afterEach(() => {
    for (const connection of open.splice(0)) connection.abort()
  })
  return (item) => {
    if ('dialler' in item) open.push(item.dialler, item.listener)
    else open.push(item)
    return item
  }
}

/** Two connections over an in-memory pipe, or over the given sockets. */
export function muxedPair(options: Options = {}, sockets: [Duplex, Duplex] = createMemoryDuplexPair()): { dialler: Connection; listener: Connection } {
  const dialler = createMuxedConnection(sockets[0], { ...options, direction: 'outbound', remoteNodeId: LISTENER_ID, remoteAddress: 'listener:1' })
  const listener = createMuxedConnection(sockets[1], { ...options, direction: 'inbound', remoteNodeId: DIALLER_ID, remoteAddress: 'dialler:1' })
  return { dialler, listener }
}

/** The internals of a stream, for white-box checks. */
export function internals(stream: Stream): MuxedStream {
  return stream as MuxedStream
}

const acceptors = new WeakMap<Connection, AsyncIterator<Stream>>()

/** The next stream the remote opens (`incoming` is iterated once per connection, here). */
export async function accept(connection: Connection): Promise<Stream> {
  let acceptor = acceptors.get(connection)
  if (acceptor === undefined) {
    acceptor = connection.incoming[Symbol.asyncIterator]()
    acceptors.set(connection, acceptor)
  }
  const result = await acceptor.next()
  if (result.done === true) throw new Error('the connection closed before a stream arrived')
  return result.value
}

export async function readText(stream: Stream): Promise<string> {
  const parts: Uint8Array[] = []
  for await (const chunk of stream) parts.push(chunk)
  return Buffer.concat(parts).toString()
}

export async function errorOf(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise
  } catch (err) {
    return err as Error & { code?: string }
  }
  throw new Error('expected a rejection')
}

/** Writes `text` and half-closes. */
export async function send(stream: Stream, text: string): Promise<void> {
  await stream.write(Buffer.from(text))
  await stream.closeWrite()
}

/** One frame, encoded. */
export function frame(type: number, flags: number, streamId: number, length: number, payload?: Uint8Array): Buffer {
  const header = encodeHeader(type, flags, streamId, length)
  return payload === undefined ? header : Buffer.concat([header, payload])
}

export function dataFrame(flags: number, streamId: number, payload: Uint8Array): Buffer {
  return frame(TYPE_DATA, flags, streamId, payload.length, payload)
}

export interface Frame {
  type: number
  flags: number
  streamId: number
  length: number
  payload: Buffer
}

/**
 * A muxed connection (the listener side, so the raw peer opens odd ids) whose
 * remote is driven by hand: the test writes frames to `raw` and reads the
 * frames the muxer sends with `next()`.
 */
export function rawPeer(options: Options & { read?: boolean } = {}): {
  connection: Connection
  raw: Duplex
  socket: Duplex
  next(match?: (frame: Frame) => boolean): Promise<Frame>
} {
  const { read = true, ...muxerOptions } = options
  const [socket, raw] = createMemoryDuplexPair()
  const connection = createMuxedConnection(socket, { ...muxerOptions, direction: 'inbound', remoteNodeId: DIALLER_ID, remoteAddress: 'raw:1' })
  const frames: Frame[] = []
  const waiters: { match: (frame: Frame) => boolean; resolve: (frame: Frame) => void }[] = []
  let current: Frame | undefined
  const deliver = (f: Frame): void => {
    const at = waiters.findIndex((w) => w.match(f))
    if (at >= 0) waiters.splice(at, 1)[0]!.resolve(f)
    else frames.push(f)
  }
  const decoder = new FrameDecoder(
    {
      frame(type, flags, streamId, length) {
        current = { type, flags, streamId, length, payload: Buffer.alloc(0) }
        if (type !== TYPE_DATA) deliver(current)
      },
      data(piece) {
        current!.payload = Buffer.concat([current!.payload, piece])
      },
      dataEnd() {
        deliver(current!)
      },
    },
    0xffffffff,
  )
  if (read) raw.on('data', (chunk: Buffer) => decoder.push(chunk))
  return {
    connection,
    raw,
    socket,
    next(match = () => true) {
      const at = frames.findIndex(match)
      if (at >= 0) return Promise.resolve(frames.splice(at, 1)[0]!)
      return new Promise((resolve) => waiters.push({ match, resolve }))
    },
  }
}
