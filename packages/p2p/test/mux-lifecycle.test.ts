import { setTimeout as delay } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import { createMemoryDuplexPair, createMuxedConnection, PeerTimeoutError } from '../src/index.js'
import type { MemoryDuplex } from '../src/memory/duplex.js'
import { abortedAfterEach, accept, errorOf, LISTENER_ID, muxedPair, readText, send } from './mux-helpers.js'

const track = abortedAfterEach()

describe('muxer keep-alive', () => {
  it('fails every stream and the connection with ERR_PEER_TIMEOUT when the remote falls silent', async () => {
    const sockets = createMemoryDuplexPair()
    const { dialler, listener } = track(muxedPair({ keepAliveInterval: 50, deadPeerTimeout: 300 }, sockets))
    const stream = await dialler.openStream()
    await stream.write(Buffer.from('x'))
    const remote = await accept(listener)
    const reading = errorOf(readText(stream))
    const remoteReading = errorOf(readText(remote))
    const silentSince = performance.now()
    ;(sockets[0] as MemoryDuplex).blackhole()
    expect((await reading).code).toBe('ERR_PEER_TIMEOUT')
    expect((await remoteReading).code).toBe('ERR_PEER_TIMEOUT')
    expect(await dialler.closed).toMatchObject({ code: 'ERR_PEER_TIMEOUT' })
    expect(await listener.closed).toMatchObject({ code: 'ERR_PEER_TIMEOUT' })
    // Silence for the timeout, not much more (the last frame may be up to one ping interval old).
    const waited = performance.now() - silentSince
    expect(waited).toBeGreaterThanOrEqual(300 - 60)
    expect(waited).toBeLessThan(300 + 3000)
  })

  it('keeps an idle connection open well past the dead-peer timeout, answering pings', async () => {
    const { dialler, listener } = track(muxedPair({ keepAliveInterval: 50, deadPeerTimeout: 250 }))
    let closed = false
    void dialler.closed.then(() => (closed = true))
    void listener.closed.then(() => (closed = true))
    // The thing under test is time: four dead-peer timeouts of idleness.
    await delay(1000)
    expect(closed).toBe(false)
    const stream = await dialler.openStream()
    await send(stream, 'still here')
    expect(await readText(await accept(listener))).toBe('still here')
  })
})

describe('muxer connection end', () => {
  it('fails the streams with ERR_CONNECTION_CLOSED when the socket errors, keeping the cause', async () => {
    const sockets = createMemoryDuplexPair()
    const { dialler } = track(muxedPair({}, sockets))
    const stream = await dialler.openStream()
    const reading = errorOf(readText(stream))
    const cause = new Error('ECONNRESET')
    sockets[0].destroy(cause)
    const error = await reading
    expect(error.code).toBe('ERR_CONNECTION_CLOSED')
    expect(error.cause).toBe(cause)
    expect(await dialler.closed).toBe(error)
  })

  it('fails the streams with ERR_CONNECTION_CLOSED when the remote ends the socket without a go-away', async () => {
    const sockets = createMemoryDuplexPair()
    const { dialler, listener } = track(muxedPair({}, sockets))
    const stream = await listener.openStream()
    await stream.write(Buffer.from('x'))
    const reading = errorOf(readText(stream))
    sockets[0].end()
    expect((await reading).code).toBe('ERR_CONNECTION_CLOSED')
    expect(await listener.closed).toMatchObject({ code: 'ERR_CONNECTION_CLOSED' })
    expect(await dialler.closed).toMatchObject({ code: 'ERR_CONNECTION_CLOSED' })
  })

  it('fails the streams with the reason given to abort() when it is a typed error', async () => {
    const { dialler, listener } = track(muxedPair())
    const stream = await dialler.openStream()
    const reading = errorOf(readText(stream))
    const reason = new PeerTimeoutError('the application gave up')
    dialler.abort(reason)
    expect(await reading).toBe(reason)
    expect(await dialler.closed).toBe(reason)
    expect(await listener.closed).toMatchObject({ code: 'ERR_CONNECTION_CLOSED' })
  })

  it('resolves closed with ERR_CONNECTION_CLOSED after abort() without a reason', async () => {
    const { dialler } = track(muxedPair())
    dialler.abort()
    expect(await dialler.closed).toMatchObject({ code: 'ERR_CONNECTION_CLOSED' })
    expect((await errorOf(dialler.openStream())).code).toBe('ERR_CONNECTION_CLOSED')
  })

  it('closes at once over a socket that was already destroyed', async () => {
    const [socket] = createMemoryDuplexPair()
    socket.destroy()
    const connection = createMuxedConnection(socket, { direction: 'outbound', remoteNodeId: LISTENER_ID, remoteAddress: 'x:1' })
    expect(await connection.closed).toMatchObject({ code: 'ERR_CONNECTION_CLOSED' })
  })

  it('resolves close() only once the open streams have finished', async () => {
    const { dialler, listener } = track(muxedPair())
    const stream = await dialler.openStream()
    await stream.write(Buffer.from('x'))
    const remote = await accept(listener)
    let closed = false
    const closing = dialler.close().then(() => (closed = true))
    await send(stream, 'y')
    expect(await readText(remote)).toBe('xy')
    expect(closed).toBe(false)
    await remote.closeWrite()
    await closing
    expect(closed).toBe(true)
  })

  it('rejects invalid options with a RangeError or TypeError', () => {
    const [socket] = createMemoryDuplexPair()
    const base = { remoteNodeId: LISTENER_ID, remoteAddress: 'x:1' }
    expect(() => createMuxedConnection(socket, { ...base, direction: 'sideways' as 'inbound' })).toThrow(TypeError)
    expect(() => createMuxedConnection(socket, { ...base, direction: 'inbound', maxStreams: 0 })).toThrow(RangeError)
    expect(() => createMuxedConnection(socket, { ...base, direction: 'inbound', maxStreamWindow: 1000 })).toThrow(RangeError)
    expect(() => createMuxedConnection(socket, { ...base, direction: 'inbound', deadPeerTimeout: 1.5 })).toThrow(RangeError)
  })
})
