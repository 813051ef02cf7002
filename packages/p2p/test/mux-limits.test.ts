// What a remote can make a connection hold: streams beyond maxStreams or the receive
// budget are refused (typed, the connection stays up), every window counts against
// the budget, and a stream left waiting on a silent remote times out.
import { once } from 'node:events'
import { describe, expect, it } from 'vitest'
import { createMemoryDuplexPair, createMuxedConnection, type Stream } from '../src/index.js'
import { FLAG_RST, FLAG_SYN, INITIAL_STREAM_GRANT, INITIAL_STREAM_WINDOW, RESET_REFUSED, TYPE_WINDOW_UPDATE } from '../src/muxer/frame.js'
import {
  abortedAfterEach,
  accept,
  dataFrame,
  DIALLER_ID,
  errorOf,
  frame,
  internals,
  LISTENER_ID,
  muxedPair,
  rawPeer,
  readText,
  send,
} from './mux-helpers.js'

const track = abortedAfterEach()
const KiB = 1024
const MiB = 1024 * KiB

describe('muxer limits on what the remote can make us hold', () => {
  it('refuses streams beyond maxStreams with a typed reset and keeps the connection', async () => {
    const peer = rawPeer({ maxStreams: 4 })
    track(peer.connection)
    for (const id of [1, 3, 5, 7, 9, 11]) peer.raw.write(frame(TYPE_WINDOW_UPDATE, FLAG_SYN, id, 0))
    for (const id of [9, 11]) {
      const refusal = await peer.next((f) => f.streamId === id)
      expect(refusal).toMatchObject({ type: TYPE_WINDOW_UPDATE, length: RESET_REFUSED })
      expect(refusal.flags & FLAG_RST).toBe(FLAG_RST)
    }
    expect(peer.connection.open).toBe(true)
    // The four streams taken are served; a later one gets a slot once one of them is done.
    const first = await accept(peer.connection)
    first.reset()
    peer.raw.write(dataFrame(FLAG_SYN, 13, Buffer.from('after')))
    peer.raw.write(frame(TYPE_WINDOW_UPDATE, 4 /* FIN */, 13, 0))
    for (let i = 0; i < 3; i++) await accept(peer.connection)
    expect(await readText(await accept(peer.connection))).toBe('after')
  })

  it('stops reading a remote that floods refused streams without reading the refusals', async () => {
    const peer = rawPeer({ read: false, maxStreams: 1 })
    track(peer.connection)
    const paused = once(peer.socket, 'pause')
    let nextId = 1
    // Up to 800 000 SYNs: 9.6 MB of refusals, more than the 4 MiB of answers the muxer lets pile up.
    while (nextId < 1_600_000 && !peer.socket.isPaused()) {
      const syns = Buffer.concat(Array.from({ length: 512 }, (_, i) => frame(TYPE_WINDOW_UPDATE, FLAG_SYN, nextId + 2 * i, 0)))
      nextId += 1024
      peer.raw.write(syns)
      if (peer.raw.writableNeedDrain) await Promise.race([once(peer.raw, 'drain'), paused])
    }
    await paused
    const pending = (peer.connection as unknown as { pendingBytes(): number }).pendingBytes()
    expect(pending).toBeLessThan(4 * MiB + 128 * KiB)
    // Reading the answers lets it go on: the first stream is acknowledged (with its grant), every other one refused.
    const opened = (nextId - 1) / 2
    let answered = 0
    peer.raw.on('data', (chunk: Buffer) => {
      answered += chunk.length
    })
    while (answered < opened * 12) await once(peer.raw, 'data')
    expect(answered).toBe(opened * 12)
    expect(peer.connection.open).toBe(true)
  })

  it('fails a refused stream on the opening side with ERR_STREAM_REFUSED, and later streams work', async () => {
    // The dialler allows itself 8 streams; the listener takes 2.
    const [a, b] = createMemoryDuplexPair()
    const dialler = track(createMuxedConnection(a, { direction: 'outbound', remoteNodeId: LISTENER_ID, remoteAddress: 'l:1', maxStreams: 8 }))
    const listener = track(createMuxedConnection(b, { direction: 'inbound', remoteNodeId: DIALLER_ID, remoteAddress: 'd:1', maxStreams: 2 }))
    const streams = await Promise.all([1, 2, 3].map(() => dialler.openStream()))
    expect(await errorOf(readText(streams[2]!))).toMatchObject({ code: 'ERR_STREAM_REFUSED', name: 'StreamRefusedError' })
    expect(dialler.open).toBe(true)
    await send(streams[0]!, 'first')
    expect(await readText(await accept(listener))).toBe('first')
  })

  it('counts every initial window against maxConnectionWindow: queued streams never exceed it', async () => {
    // 1 MiB of budget: 4 initial windows of 256 KiB.
    const peer = rawPeer({ maxConnectionWindow: MiB, maxStreams: 64 })
    track(peer.connection)
    const full = Buffer.alloc(INITIAL_STREAM_WINDOW, 7)
    for (let id = 1; id <= 11; id += 2) peer.raw.write(dataFrame(FLAG_SYN, id, full))
    for (const id of [9, 11]) expect(await peer.next((f) => f.streamId === id && (f.flags & FLAG_RST) !== 0)).toMatchObject({ length: RESET_REFUSED })
    const taken: Stream[] = []
    for (let i = 0; i < 4; i++) taken.push(await accept(peer.connection))
    const buffered = taken.reduce((sum, stream) => sum + internals(stream).bufferedBytes, 0)
    expect(buffered).toBe(4 * INITIAL_STREAM_WINDOW)
    expect(peer.connection.open).toBe(true)
  })

  it('fits 226 streams beside ten 1 MiB grants with the defaults, refuses the rest, and never grants more than the budget', async () => {
    const peer = rawPeer()
    track(peer.connection)
    const ids = Array.from({ length: 256 }, (_, i) => 2 * i + 1)
    peer.raw.write(Buffer.concat(ids.map((id) => frame(TYPE_WINDOW_UPDATE, FLAG_SYN, id, 0))))
    // 64 MiB = 226 initial windows of 256 KiB + ten grants of 768 KiB; the 30 streams beyond are refused.
    for (const id of ids.slice(226)) {
      expect(await peer.next((f) => f.streamId === id && (f.flags & FLAG_RST) !== 0)).toMatchObject({ length: RESET_REFUSED })
    }
    const taken: Stream[] = []
    while (taken.length < 226) taken.push(await accept(peer.connection))
    const windows = taken.map((stream) => internals(stream).recvWindow)
    expect(windows.reduce((sum, window) => sum + window, 0)).toBeLessThanOrEqual(64 * MiB)
    expect(windows.filter((window) => window === INITIAL_STREAM_GRANT)).toHaveLength(10)
    expect(peer.connection.open).toBe(true)
  })

  it('keeps growth to half the budget, so new streams still fit while big transfers run', async () => {
    const { dialler, listener } = track(muxedPair({ maxConnectionWindow: 2 * MiB }))
    const big = await dialler.openStream()
    const writing = (async () => {
      const chunk = Buffer.alloc(256 * KiB, 1)
      for (let i = 0; i < 64; i++) await big.write(chunk)
      await big.closeWrite()
    })()
    const remote = await accept(listener)
    let received = 0
    for await (const piece of remote) received += piece.length
    await writing
    expect(received).toBe(16 * MiB)
    expect(internals(remote).recvWindow).toBeLessThanOrEqual(INITIAL_STREAM_WINDOW + MiB)
    // The other half still takes new streams.
    const small = await Promise.all([dialler.openStream(), dialler.openStream()])
    await Promise.all(small.map((s, i) => send(s, `small ${i}`)))
    expect(await readText(await accept(listener))).toBe('small 0')
    expect(await readText(await accept(listener))).toBe('small 1')
  })

  it('refuses openStream with ERR_TOO_MANY_STREAMS once our own budget is full', async () => {
    const { dialler } = track(muxedPair({ maxConnectionWindow: 512 * KiB, maxStreams: 64 }))
    await dialler.openStream()
    await dialler.openStream()
    expect(await errorOf(dialler.openStream())).toMatchObject({ code: 'ERR_TOO_MANY_STREAMS', message: expect.stringContaining('maxConnectionWindow') as unknown })
  })

  it('times out a read the remote leaves waiting: ERR_PEER_TIMEOUT here, a reset there', async () => {
    const [a, b] = createMemoryDuplexPair()
    const dialler = track(createMuxedConnection(a, { direction: 'outbound', remoteNodeId: LISTENER_ID, remoteAddress: 'l:1', streamIdleTimeout: 100 }))
    const listener = track(createMuxedConnection(b, { direction: 'inbound', remoteNodeId: DIALLER_ID, remoteAddress: 'd:1' }))
    const stream = await dialler.openStream()
    await stream.write(Buffer.from('request'))
    const remote = await accept(listener)
    const theirs = remote[Symbol.asyncIterator]()
    expect(Buffer.from((await theirs.next()).value as Uint8Array).toString()).toBe('request')
    const waiting = errorOf(theirs.next())
    // The listener never answers: the dialler's read times out and resets the stream.
    expect(await errorOf(readText(stream))).toMatchObject({ code: 'ERR_PEER_TIMEOUT', message: expect.stringContaining('streamIdleTimeout') as unknown })
    expect((await waiting).code).toBe('ERR_STREAM_RESET')
    expect(dialler.open).toBe(true)
  })

  it('times out a write the remote never makes room for', async () => {
    const { dialler, listener } = track(muxedPair({ streamIdleTimeout: 100 }))
    const stream = await dialler.openStream()
    await accept(listener) // accepted, never read
    // Beyond the 1 MiB the listener granted with its acknowledgement.
    const writing = errorOf(stream.write(Buffer.alloc(INITIAL_STREAM_GRANT + 1)))
    expect(await writing).toMatchObject({ code: 'ERR_PEER_TIMEOUT' })
  })

  it('never times out a stream nobody waits on', async () => {
    const { dialler, listener } = track(muxedPair({ streamIdleTimeout: 20 }))
    const idle = await dialler.openStream()
    await send(idle, 'x')
    const remote = await accept(listener)
    // A second stream whose read does time out is the clock: idle checks have run by then.
    const clock = await dialler.openStream()
    await clock.write(Buffer.from('?'))
    await accept(listener)
    expect(await errorOf(readText(clock))).toMatchObject({ code: 'ERR_PEER_TIMEOUT' })
    expect(await readText(remote)).toBe('x')
    await remote.closeWrite()
    expect(await readText(idle)).toBe('')
  })
})
