import { describe, expect, it } from 'vitest'
import {
  FLAG_ACK,
  FLAG_FIN,
  FLAG_RST,
  FLAG_SYN,
  GO_AWAY_NORMAL,
  GO_AWAY_PROTOCOL_ERROR,
  INITIAL_STREAM_GRANT,
  RESET_REFUSED,
  TYPE_DATA,
  TYPE_GO_AWAY,
  TYPE_PING,
  TYPE_WINDOW_UPDATE,
} from '../src/muxer/frame.js'
import { abortedAfterEach, accept, dataFrame, errorOf, frame, muxedPair, rawPeer, readText, send } from './mux-helpers.js'

const track = abortedAfterEach()

/**
 * Opens stream 1 from a raw peer, then sends `bad`: the connection must close
 * with `code`, fail the open stream with it, and tell the peer with a
 * protocol-error go-away.
 */
async function expectViolation(bad: Buffer[], code: string, options: { maxStreams?: number } = {}): Promise<void> {
  const peer = rawPeer(options)
  track(peer.connection)
  peer.raw.write(dataFrame(FLAG_SYN, 1, Buffer.from('hello')))
  const stream = await accept(peer.connection)
  const reading = errorOf(readText(stream))
  for (const buf of bad) peer.raw.write(buf)
  expect(await peer.connection.closed).toMatchObject({ code })
  expect((await reading).code).toBe(code)
  expect((await errorOf(stream.write(Buffer.from('x')))).code).toBe(code)
  expect(peer.connection.open).toBe(false)
  const goAway = await peer.next((f) => f.type === TYPE_GO_AWAY)
  expect(goAway.length).toBe(GO_AWAY_PROTOCOL_ERROR)
}

describe('muxer bounds on what it reads', () => {
  it('closes the connection with ERR_PROTOCOL on an unknown frame version', async () => {
    const bad = frame(TYPE_WINDOW_UPDATE, 0, 1, 0)
    bad[0] = 1
    await expectViolation([bad], 'ERR_PROTOCOL')
  })

  it('closes the connection with ERR_PROTOCOL on an unknown frame type', async () => {
    await expectViolation([frame(4, 0, 1, 0)], 'ERR_PROTOCOL')
  })

  it('closes the connection with ERR_PROTOCOL on unknown flags', async () => {
    await expectViolation([frame(TYPE_WINDOW_UPDATE, 0x10, 1, 0)], 'ERR_PROTOCOL')
  })

  it('closes the connection with ERR_PROTOCOL on a frame for a stream that was never opened', async () => {
    await expectViolation([dataFrame(0, 7, Buffer.from('who?'))], 'ERR_PROTOCOL')
  })

  it('closes the connection with ERR_PROTOCOL on a frame for one of our ids we never used', async () => {
    await expectViolation([frame(TYPE_WINDOW_UPDATE, 0, 2, 100)], 'ERR_PROTOCOL')
  })

  it('closes the connection with ERR_PROTOCOL when the remote opens a stream with one of our ids', async () => {
    await expectViolation([frame(TYPE_WINDOW_UPDATE, FLAG_SYN, 2, 0)], 'ERR_PROTOCOL')
  })

  it('closes the connection with ERR_PROTOCOL when the remote opens a stream id twice', async () => {
    await expectViolation([frame(TYPE_WINDOW_UPDATE, FLAG_SYN, 1, 0)], 'ERR_PROTOCOL')
  })

  it('closes the connection with ERR_PROTOCOL on a data or window update frame for stream 0', async () => {
    await expectViolation([frame(TYPE_WINDOW_UPDATE, 0, 0, 5)], 'ERR_PROTOCOL')
  })

  it('closes the connection with ERR_PROTOCOL on a ping for a stream other than 0', async () => {
    await expectViolation([frame(TYPE_PING, FLAG_SYN, 1, 0)], 'ERR_PROTOCOL')
  })

  it('closes the connection with ERR_PROTOCOL on data after the remote\'s FIN', async () => {
    const peer = rawPeer()
    track(peer.connection)
    peer.raw.write(dataFrame(FLAG_SYN | FLAG_FIN, 1, Buffer.from('hello')))
    const stream = await accept(peer.connection)
    peer.raw.write(dataFrame(0, 1, Buffer.from('late')))
    expect(await peer.connection.closed).toMatchObject({ code: 'ERR_PROTOCOL' })
    // The read side had ended: its bytes stay readable; writing fails.
    expect(await readText(stream)).toBe('hello')
    expect((await errorOf(stream.write(Buffer.from('x')))).code).toBe('ERR_PROTOCOL')
  })

  it('closes the connection with ERR_PROTOCOL on a window update that overflows 32 bits', async () => {
    await expectViolation([frame(TYPE_WINDOW_UPDATE, 0, 1, 0xffffffff)], 'ERR_PROTOCOL')
  })

  it('closes the connection with ERR_PROTOCOL when the remote opens a stream after its go-away', async () => {
    await expectViolation([frame(TYPE_GO_AWAY, 0, 0, GO_AWAY_NORMAL), frame(TYPE_WINDOW_UPDATE, FLAG_SYN, 3, 0)], 'ERR_PROTOCOL')
  })

  it('closes the connection with ERR_FRAME_TOO_LARGE on a data frame beyond the window granted', async () => {
    // The stream was granted INITIAL_STREAM_GRANT bytes with its ACK; 'hello' used five of them.
    const payload = Buffer.alloc(INITIAL_STREAM_GRANT, 1)
    await expectViolation([dataFrame(0, 1, payload)], 'ERR_FRAME_TOO_LARGE')
  })

  it('closes the connection with ERR_FRAME_TOO_LARGE on a 4 GiB length before any payload arrives', async () => {
    await expectViolation([frame(TYPE_DATA, 0, 1, 0xffffffff)], 'ERR_FRAME_TOO_LARGE')
  })


  it('closes the connection with ERR_PROTOCOL when it ends in the middle of a frame', async () => {
    const peer = rawPeer()
    track(peer.connection)
    peer.raw.write(frame(TYPE_GO_AWAY, 0, 0, GO_AWAY_NORMAL))
    peer.raw.end(frame(TYPE_PING, FLAG_SYN, 0, 1).subarray(0, 7))
    expect(await peer.connection.closed).toMatchObject({ code: 'ERR_PROTOCOL' })
  })

  it('ignores frames still in flight for a stream it reset', async () => {
    const peer = rawPeer()
    track(peer.connection)
    peer.raw.write(dataFrame(FLAG_SYN, 1, Buffer.from('first')))
    const stream = await accept(peer.connection)
    stream.reset()
    await peer.next((f) => f.streamId === 1 && (f.flags & FLAG_RST) !== 0)
    peer.raw.write(dataFrame(0, 1, Buffer.from('in flight')))
    peer.raw.write(frame(TYPE_WINDOW_UPDATE, FLAG_FIN, 1, 1000))
    peer.raw.write(dataFrame(FLAG_SYN, 3, Buffer.from('next')))
    peer.raw.write(frame(TYPE_WINDOW_UPDATE, FLAG_FIN, 3, 0))
    const next = await accept(peer.connection)
    expect(await readText(next)).toBe('next')
    expect(peer.connection.open).toBe(true)
  })

  it('refuses with RST a stream that crossed its go-away, and still closes cleanly', async () => {
    const peer = rawPeer()
    track(peer.connection)
    peer.raw.write(dataFrame(FLAG_SYN, 1, Buffer.from('open before')))
    const stream = await accept(peer.connection)
    const closing = peer.connection.close()
    await peer.next((f) => f.type === TYPE_GO_AWAY)
    peer.raw.write(frame(TYPE_WINDOW_UPDATE, FLAG_SYN, 3, 0))
    const refusal = await peer.next((f) => f.streamId === 3)
    expect(refusal.flags & FLAG_RST).toBe(FLAG_RST)
    expect(refusal.length).toBe(RESET_REFUSED)
    // The stream open before the go-away finishes; then the connection ends.
    peer.raw.write(frame(TYPE_WINDOW_UPDATE, FLAG_FIN, 1, 0))
    expect(await readText(stream)).toBe('open before')
    await stream.closeWrite()
    peer.raw.end()
    await closing
    expect(await peer.connection.closed).toBeUndefined()
  })

  it('rejects openStream beyond maxStreams with ERR_TOO_MANY_STREAMS and keeps the connection', async () => {
    const { dialler, listener } = muxedPair({ maxStreams: 2 })
    track({ dialler, listener })
    const first = await dialler.openStream()
    await dialler.openStream()
    expect((await errorOf(dialler.openStream())).code).toBe('ERR_TOO_MANY_STREAMS')
    await send(first, 'still fine')
    const remote = await accept(listener)
    expect(await readText(remote)).toBe('still fine')
    await remote.closeWrite()
    // Once a stream is finished on both sides, its slot is free again.
    await readText(first)
    const third = await dialler.openStream()
    expect(third.id).toBe(5)
  })

  it('marks the remote\'s go-away with an error code as the connection\'s error', async () => {
    const peer = rawPeer()
    track(peer.connection)
    peer.raw.write(dataFrame(FLAG_SYN | FLAG_ACK, 1, Buffer.from('x')))
    const stream = await accept(peer.connection)
    peer.raw.write(frame(TYPE_GO_AWAY, 0, 0, GO_AWAY_PROTOCOL_ERROR))
    peer.raw.end()
    expect((await errorOf(readText(stream))).code).toBe('ERR_PROTOCOL')
    expect(await peer.connection.closed).toMatchObject({ code: 'ERR_PROTOCOL' })
  })
})
