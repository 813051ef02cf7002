// The muxer over real TCP sockets (no TLS): cork, drain and end behave as the kernel makes them.
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import type { Stream } from '../src/index.js'
import { abortedAfterEach, accept, errorOf, muxedPair, readText, send } from './mux-helpers.js'

let server: Server | undefined

afterEach(async () => {
  if (server !== undefined) {
    server.close()
    await once(server, 'close')
    server = undefined
  }
})

// Registered after the hook above, so it runs before it (hooks unwind as a stack): the server closes once its connections are gone.
const track = abortedAfterEach()

async function tcpPair(): Promise<[Socket, Socket]> {
  const listening = createServer()
  server = listening
  listening.listen(0, '127.0.0.1')
  await once(listening, 'listening')
  const { port } = listening.address() as { port: number }
  const accepted = once(listening, 'connection') as Promise<[Socket]>
  const dialled = connect(port, '127.0.0.1')
  await once(dialled, 'connect')
  const [inbound] = await accepted
  for (const socket of [dialled, inbound]) socket.setNoDelay(true)
  return [dialled, inbound]
}

async function hashOf(stream: Stream): Promise<{ bytes: number; digest: string }> {
  const hash = createHash('sha256')
  let bytes = 0
  for await (const chunk of stream) {
    hash.update(chunk)
    bytes += chunk.length
  }
  return { bytes, digest: hash.digest('hex') }
}

describe('muxer over TCP', () => {
  it('carries 64 MiB each way at once, intact, while 50 small exchanges complete', async () => {
    const { dialler, listener } = muxedPair({}, await tcpPair())
    track({ dialler, listener })
    const total = 64 * 1024 * 1024
    const sendBig = async (stream: Stream, seed: number): Promise<string> => {
      const hash = createHash('sha256')
      for (let sent = 0; sent < total; sent += 1024 * 1024) {
        const chunk = Buffer.alloc(1024 * 1024, (seed + sent / 1024 / 1024) & 0xff)
        hash.update(chunk)
        await stream.write(chunk)
      }
      await stream.closeWrite()
      return hash.digest('hex')
    }
    const up = await dialler.openStream()
    const down = await listener.openStream()
    const upRemote = await accept(listener)
    const downRemote = await accept(dialler)
    const results = Promise.all([sendBig(up, 1), sendBig(down, 2), hashOf(upRemote), hashOf(downRemote)])
    const small = Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const stream = await dialler.openStream()
        await send(stream, `request ${i}`)
        const remote = await accept(listener)
        const text = await readText(remote)
        await send(remote, text.toUpperCase())
        return readText(stream)
      }),
    )
    expect(await small).toEqual(Array.from({ length: 50 }, (_, i) => `REQUEST ${i}`))
    const [upSent, downSent, upGot, downGot] = await results
    expect(upGot).toEqual({ bytes: total, digest: upSent })
    expect(downGot).toEqual({ bytes: total, digest: downSent })
  })

  it('closes cleanly with a go-away, closing both sockets', async () => {
    const sockets = await tcpPair()
    const { dialler, listener } = muxedPair({}, sockets)
    track({ dialler, listener })
    const stream = await dialler.openStream()
    await send(stream, 'bye')
    const remote = await accept(listener)
    expect(await readText(remote)).toBe('bye')
    await remote.closeWrite()
    await readText(stream)
    await dialler.close()
    expect(await dialler.closed).toBeUndefined()
    expect(await listener.closed).toBeUndefined()
    expect(sockets[0].destroyed && sockets[1].destroyed).toBe(true)
  })

  it('fails the streams with ERR_CONNECTION_CLOSED when the remote socket is destroyed mid-stream', async () => {
    const sockets = await tcpPair()
    const { dialler, listener } = muxedPair({}, sockets)
    track({ dialler, listener })
    const stream = await dialler.openStream()
    await stream.write(Buffer.alloc(1024, 1))
    await accept(listener)
    const reading = errorOf(readText(stream))
    sockets[1].destroy()
    expect((await reading).code).toBe('ERR_CONNECTION_CLOSED')
    expect((await errorOf(stream.write(Buffer.alloc(1)))).code).toBe('ERR_CONNECTION_CLOSED')
  })
})
