import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { describe, expect, it } from 'vitest'
import type { Duplex } from 'node:stream'
import { createMemoryDuplexPair, type Connection, type Stream } from '../src/index.js'
import { FLAG_ACK, FLAG_SYN, INITIAL_STREAM_GRANT, INITIAL_STREAM_WINDOW, TYPE_DATA, TYPE_PING, TYPE_WINDOW_UPDATE } from '../src/muxer/frame.js'
import { abortedAfterEach, accept, errorOf, frame, internals, muxedPair, rawPeer, readText, send } from './mux-helpers.js'

const MiB = 1024 * 1024
const track = abortedAfterEach()

/** Lets every byte already written from `from` arrive at `to`: one message through a fresh stream. */
async function settle(from: Connection, to: Connection): Promise<void> {
  const stream = await from.openStream()
  await send(stream, 'settle')
  const remote = await accept(to)
  expect(await readText(remote)).toBe('settle')
  await remote.closeWrite()
}

/** `from` has processed every frame `to` sent before: a request from `from` and its answer. */
async function roundTrip(from: Connection, to: Connection): Promise<void> {
  const stream = await from.openStream()
  await send(stream, 'ping')
  const remote = await accept(to)
  await readText(remote)
  await send(remote, 'pong')
  expect(await readText(stream)).toBe('pong')
}

describe('muxer streams', () => {
  it('gives the dialler odd stream ids and the listener even ones', async () => {
    const { dialler, listener } = track(muxedPair())
    const ids = [(await dialler.openStream()).id, (await dialler.openStream()).id, (await listener.openStream()).id, (await listener.openStream()).id]
    expect(ids).toEqual([1, 3, 2, 4])
  })

  it('acknowledges an inbound stream at once, granting it a 1 MiB window for the request body', async () => {
    const peer = rawPeer()
    track(peer.connection)
    peer.raw.write(frame(TYPE_WINDOW_UPDATE, FLAG_SYN, 1, 0))
    const ack = await peer.next((f) => f.streamId === 1)
    expect(ack).toMatchObject({ type: TYPE_WINDOW_UPDATE, flags: FLAG_ACK, length: INITIAL_STREAM_GRANT - INITIAL_STREAM_WINDOW })
    const stream = await accept(peer.connection)
    await stream.write(Buffer.from('hi'))
    const reply = await peer.next((f) => f.type === TYPE_DATA)
    expect(reply).toMatchObject({ streamId: 1, flags: 0, payload: Buffer.from('hi') })
  })

  it('acknowledges an inbound stream with the first frame it sends on it when the connection has no window to grant', async () => {
    // The smallest budget allowed, 512 KiB, leaves no eighth for a grant.
    const peer = rawPeer({ maxConnectionWindow: 2 * INITIAL_STREAM_WINDOW })
    track(peer.connection)
    peer.raw.write(frame(TYPE_WINDOW_UPDATE, FLAG_SYN, 1, 0))
    const stream = await accept(peer.connection)
    await stream.write(Buffer.from('hi'))
    const reply = await peer.next((f) => f.streamId === 1)
    expect(reply).toMatchObject({ type: TYPE_DATA, flags: FLAG_ACK, payload: Buffer.from('hi') })
  })

  it('grants the answer to a stream it opens a 1 MiB window in the SYN', async () => {
    const peer = rawPeer()
    track(peer.connection)
    const stream = await peer.connection.openStream()
    const syn = await peer.next((f) => f.streamId === stream.id)
    expect(syn).toMatchObject({ type: TYPE_WINDOW_UPDATE, flags: FLAG_SYN, length: INITIAL_STREAM_GRANT - INITIAL_STREAM_WINDOW })
  })

  it('grants 1 MiB to new streams only while the grants of open streams fit in an eighth of the budget', async () => {
    // The default 64 MiB: ten grants of 768 KiB above the initial window fit in 8 MiB, an eleventh does not.
    const peer = rawPeer()
    track(peer.connection)
    const ids = Array.from({ length: 12 }, (_, i) => 2 * i + 1)
    for (const id of ids) peer.raw.write(frame(TYPE_WINDOW_UPDATE, FLAG_SYN, id, 0))
    const streams: Stream[] = []
    while (streams.length < ids.length) streams.push(await accept(peer.connection))
    for (const id of ids.slice(0, 10)) {
      expect(await peer.next((f) => f.streamId === id)).toMatchObject({ flags: FLAG_ACK, length: INITIAL_STREAM_GRANT - INITIAL_STREAM_WINDOW })
    }
    expect(streams.map((stream) => internals(stream).recvWindow)).toEqual([...Array<number>(10).fill(INITIAL_STREAM_GRANT), INITIAL_STREAM_WINDOW, INITIAL_STREAM_WINDOW])
    // A stream that is done gives its grant back: the next new stream is granted again.
    streams[0]!.reset()
    peer.raw.write(frame(TYPE_WINDOW_UPDATE, FLAG_SYN, 25, 0))
    expect(await peer.next((f) => f.streamId === 25)).toMatchObject({ flags: FLAG_ACK, length: INITIAL_STREAM_GRANT - INITIAL_STREAM_WINDOW })
  })

  it('answers a ping with the same opaque value', async () => {
    const peer = rawPeer()
    track(peer.connection)
    peer.raw.write(frame(TYPE_PING, FLAG_SYN, 0, 0xdeadbeef))
    const pong = await peer.next((f) => f.type === TYPE_PING && f.flags === FLAG_ACK)
    expect(pong.length).toBe(0xdeadbeef)
  })

  it('does not deliver an inbound stream that was reset before anyone accepted it', async () => {
    const { dialler, listener } = track(muxedPair())
    const doomed = await dialler.openStream()
    doomed.reset()
    const kept = await dialler.openStream()
    await send(kept, 'kept')
    await roundTrip(listener, dialler)
    const first = await accept(listener)
    expect(first.id).toBe(kept.id)
    expect(await readText(first)).toBe('kept')
  })

  it('ends the reader cleanly with the bytes it had, when the connection closes after the FIN', async () => {
    const { dialler, listener } = track(muxedPair())
    const stream = await dialler.openStream()
    await send(stream, 'complete message')
    const remote = await accept(listener)
    await settle(dialler, listener)
    dialler.abort()
    await listener.closed
    expect(await readText(remote)).toBe('complete message')
  })

  it('discards the rest when a reader leaves its iteration early, without holding the writer back', async () => {
    const { dialler, listener } = track(muxedPair())
    const stream = await dialler.openStream()
    const total = 4 * MiB
    const writing = (async () => {
      const chunk = Buffer.alloc(64 * 1024, 1)
      for (let sent = 0; sent < total; sent += chunk.length) await stream.write(chunk)
      await stream.closeWrite()
    })()
    const remote = await accept(listener)
    for await (const chunk of remote) {
      expect(chunk.length).toBeGreaterThan(0)
      break
    }
    await writing
    expect(internals(remote).bufferedBytes).toBe(0)
  })
})

describe('muxer flow control', () => {
  it('holds a writer whose reader reads nothing to the initial 1 MiB window', async () => {
    const { dialler, listener } = track(muxedPair())
    const stream = await dialler.openStream()
    let accepted = 0
    const writing = (async () => {
      const chunk = Buffer.alloc(32 * 1024, 2)
      for (let i = 0; i < 40; i++) {
        await stream.write(chunk)
        accepted += chunk.length
      }
      await stream.closeWrite()
    })()
    const remote = await accept(listener)
    await settle(dialler, listener)
    await settle(dialler, listener)
    expect(accepted).toBe(INITIAL_STREAM_GRANT)
    expect(internals(remote).bufferedBytes).toBe(INITIAL_STREAM_GRANT)
    expect(internals(remote).recvWindow).toBe(INITIAL_STREAM_GRANT)
    expect((await readText(remote)).length).toBe(40 * 32 * 1024)
    await writing
  })

  it('grows the window of a stream whose reader keeps up, up to maxStreamWindow', async () => {
    const { dialler, listener } = track(muxedPair({ maxStreamWindow: 4 * MiB }))
    const stream = await dialler.openStream()
    const chunk = Buffer.alloc(MiB, 3)
    const writing = (async () => {
      for (let i = 0; i < 64; i++) await stream.write(chunk)
      await stream.closeWrite()
    })()
    const remote = await accept(listener)
    let received = 0
    for await (const piece of remote) received += piece.length
    await writing
    expect(received).toBe(64 * MiB)
    expect(internals(remote).recvWindow).toBe(4 * MiB)
  })

  it('stops growing windows at the connection budget', async () => {
    const { dialler, listener } = track(muxedPair({ maxConnectionWindow: MiB }))
    const streams = await Promise.all([dialler.openStream(), dialler.openStream()])
    const writing = streams.map(async (stream) => {
      const chunk = Buffer.alloc(256 * 1024, 4)
      for (let i = 0; i < 64; i++) await stream.write(chunk)
      await stream.closeWrite()
    })
    const remotes = [await accept(listener), await accept(listener)]
    await Promise.all(remotes.map((remote) => readText(remote)))
    await Promise.all(writing)
    const windows = remotes.map((remote) => internals(remote).recvWindow)
    expect(windows[0]! + windows[1]!).toBeLessThanOrEqual(MiB)
    expect(Math.max(...windows)).toBeGreaterThan(INITIAL_STREAM_WINDOW)
  })

  it('keeps at most about 1 MiB queued for the socket when the remote stops reading it', async () => {
    const peer = rawPeer({ read: false })
    track(peer.connection)
    for (let id = 1; id <= 15; id += 2) peer.raw.write(frame(TYPE_WINDOW_UPDATE, FLAG_SYN, id, 0))
    const streams: Stream[] = []
    while (streams.length < 8) streams.push(await accept(peer.connection))
    // Eight windows of 256 KiB allow 2 MiB; the send limit stops the writers first.
    const writes = streams.map((stream) => stream.write(Buffer.alloc(INITIAL_STREAM_WINDOW, 5)))
    const pending = (peer.connection as unknown as { pendingBytes(): number }).pendingBytes()
    expect(pending).toBeGreaterThanOrEqual(MiB)
    expect(pending).toBeLessThan(MiB + 256 * 1024 + 1024)
    peer.raw.resume()
    await Promise.all(writes)
  })

  it('stops reading a remote that floods pings without reading the answers', async () => {
    const peer = rawPeer({ read: false })
    track(peer.connection)
    const pings = Buffer.concat(Array.from({ length: 512 }, (_, i) => frame(TYPE_PING, FLAG_SYN, 0, i)))
    const paused = once(peer.socket, 'pause')
    let sent = 0
    // 800 000 pings: 9.6 MB of answers, more than the 4 MiB the muxer lets pile up.
    while (sent < 800_000 && peer.socket.isPaused() === false) {
      peer.raw.write(pings)
      sent += 512
      if (peer.raw.writableNeedDrain) await Promise.race([once(peer.raw, 'drain'), paused])
    }
    await paused
    expect(peer.socket.writableLength).toBeLessThan(4 * MiB + 128 * 1024)
    // Reading the answers lets it go on: every ping is answered.
    let answered = 0
    peer.raw.on('data', (chunk: Buffer) => {
      answered += chunk.length
    })
    while (answered < sent * 12) await once(peer.raw, 'data')
    expect(answered).toBe(sent * 12)
    expect(peer.connection.open).toBe(true)
  })
})

describe('muxer integrity', () => {
  it('carries 8 concurrent streams of 8 MiB each intact', async () => {
    const { dialler, listener } = track(muxedPair())
    const digests = new Map<number, string>()
    const receiving = (async () => {
      const done: Promise<void>[] = []
      for await (const stream of listener.incoming) {
        done.push(
          (async () => {
            const hash = createHash('sha256')
            for await (const chunk of stream) hash.update(chunk)
            digests.set(stream.id, hash.digest('hex'))
            await stream.closeWrite()
          })(),
        )
        if (done.length === 8) break
      }
      await Promise.all(done)
    })()
    const expected = new Map<number, string>()
    await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const stream = await dialler.openStream()
        const hash = createHash('sha256')
        for (let j = 0; j < 32; j++) {
          const chunk = Buffer.alloc(256 * 1024 + i, (i * 31 + j) & 0xff)
          hash.update(chunk)
          await stream.write(chunk)
        }
        await stream.closeWrite()
        expected.set(stream.id, hash.digest('hex'))
      }),
    )
    await receiving
    expect(digests).toEqual(expected)
  })

  it('rejects writes on a stream the remote reset, with ERR_STREAM_RESET', async () => {
    const { dialler, listener } = track(muxedPair())
    const stream = await dialler.openStream()
    await stream.write(Buffer.from('x'))
    const remote = await accept(listener)
    remote.reset()
    expect((await errorOf(readText(stream))).code).toBe('ERR_STREAM_RESET')
    expect((await errorOf(stream.write(Buffer.from('y')))).code).toBe('ERR_STREAM_RESET')
    expect((await errorOf(stream.closeWrite())).code).toBe('ERR_STREAM_RESET')
  })
})

/** A duplex pair whose first end records every write it is given, and whether one was given before the last was taken. */
function recordedPair(): { sockets: [Duplex, Duplex]; writes: number[]; overlapped: () => boolean } {
  const sockets = createMemoryDuplexPair()
  const writes: number[] = []
  let inFlight = 0
  let overlap = false
  const socket = sockets[0]
  const write = socket.write.bind(socket) as (chunk: Uint8Array, callback?: (err?: Error | null) => void) => boolean
  socket.write = ((chunk: Uint8Array, callback?: (err?: Error | null) => void) => {
    writes.push(chunk.length)
    if (inFlight > 0) overlap = true
    inFlight++
    return write(chunk, (err) => {
      inFlight--
      callback?.(err)
    })
  }) as typeof socket.write
  return { sockets, writes, overlapped: () => overlap }
}

describe('muxer writes', () => {
  it('sends the frames of one tick in one write', async () => {
    const { sockets, writes } = recordedPair()
    const { dialler, listener } = track(muxedPair({}, sockets))
    const streams = await Promise.all([dialler.openStream(), dialler.openStream(), dialler.openStream()])
    await streams[0].write(Buffer.from('open'))
    const remotes = await Promise.all([accept(listener), accept(listener), accept(listener)])
    const readers = remotes.map((remote) => remote[Symbol.asyncIterator]())
    await readers[0]!.next()
    writes.length = 0
    await Promise.all(streams.map((stream, i) => stream.write(Buffer.from(`message ${i}`))))
    const got = await Promise.all(readers.map(async (reader) => Buffer.from((await reader.next()).value as Uint8Array).toString()))
    expect(got).toEqual(['message 0', 'message 1', 'message 2'])
    // Three data frames of 9 bytes, each with its 12-byte header, in one write.
    expect(writes).toEqual([3 * (12 + 9)])
  })

  it('cuts a large write into send buffers of at most 256 KiB, given to the socket one at a time, and delivers it whole', async () => {
    const { sockets, writes, overlapped } = recordedPair()
    const { dialler, listener } = track(muxedPair({}, sockets))
    const stream = await dialler.openStream()
    const body = Buffer.allocUnsafe(3 * MiB + 5)
    for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff
    const writing = (async () => {
      await stream.write(body)
      await stream.closeWrite()
    })()
    const remote = await accept(listener)
    const pieces: Uint8Array[] = []
    for await (const piece of remote) pieces.push(piece)
    await writing
    expect(Buffer.concat(pieces).equals(body)).toBe(true)
    expect(Math.max(...writes)).toBeLessThanOrEqual(256 * 1024)
    expect(writes.reduce((a, b) => a + b, 0)).toBeGreaterThan(body.length)
    expect(overlapped()).toBe(false)
  })

  it('copies what a stream writes: changing the buffer after write() resolved changes nothing that arrives', async () => {
    const { dialler, listener } = track(muxedPair())
    const stream = await dialler.openStream()
    const body = Buffer.alloc(100_000, 1)
    await stream.write(body)
    body.fill(2)
    await stream.closeWrite()
    const got = Buffer.from(await readText(await accept(listener)), 'latin1')
    expect(got.equals(Buffer.alloc(100_000, 1))).toBe(true)
  })
})
