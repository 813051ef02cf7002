// One connection, a 1 GiB stream, and a burst of small request/response streams at once.
import { afterEach, describe, expect, it } from 'vitest'
import { createMemoryNetwork, memoryTransport, type Connection, type Stream, type Transport } from '../src/index.js'
import { accept, internals, readText, send } from './mux-helpers.js'

const MiB = 1024 * 1024
const GiB = 1024 * MiB
const transports: Transport[] = []
/**
 * Streams opened at once beside the big one: the default 64 MiB budget keeps room for 128
 * initial windows of 256 KiB whatever the windows grew to (half of it at most). 200 would
 * need 50 MiB beside the big stream's window of up to 16 MiB: some would be refused.
 */
const BURST = 120

afterEach(async () => {
  await Promise.allSettled(transports.splice(0).map((t) => t.close({ signal: AbortSignal.timeout(1000) })))
})

/** 16 distinct 1 MiB blocks; block i of the stream is patterns[i % 16]. */
const patterns = Array.from({ length: 16 }, (_, i) => {
  const block = Buffer.allocUnsafe(MiB)
  for (let j = 0; j < MiB; j += 4) block.writeUInt32LE((Math.imul(i + 1, 2654435761) ^ j) >>> 0, j)
  return block
})

/** Reads the big stream, checking every byte against the pattern and sampling the receive buffer. */
interface Progress {
  received: number
  maxBuffered: number
  /** Called once the stream has delivered `threshold` bytes. */
  threshold: number
  reached: () => void
}

async function receiveBig(stream: Stream, progress: Progress): Promise<number> {
  let mismatches = 0
  for await (const piece of stream) {
    let at = 0
    while (at < piece.length) {
      const offset = progress.received + at
      const block = patterns[Math.floor(offset / MiB) % 16]!
      const n = Math.min(piece.length - at, MiB - (offset % MiB))
      if (Buffer.compare(piece.subarray(at, at + n), block.subarray(offset % MiB, (offset % MiB) + n)) !== 0) mismatches++
      at += n
    }
    progress.received += piece.length
    if (progress.received >= progress.threshold) progress.reached()
    progress.maxBuffered = Math.max(progress.maxBuffered, internals(stream).bufferedBytes)
  }
  return mismatches
}

describe('muxer under load', () => {
  it('completes a burst of 120 small request/response streams while a 1 GiB stream flows on the same connection', { timeout: 120_000 }, async () => {
    const network = createMemoryNetwork()
    const a = memoryTransport({ network, clusterSecret: 'load' })
    const b = memoryTransport({ network, clusterSecret: 'load' })
    transports.push(a, b)
    let server: Connection | undefined
    const address = await b.listen('b:0', (connection) => (server = connection))
    const client = await a.dial(address)
    if (server === undefined) throw new Error('no inbound connection')

    const big = await client.openStream()
    const sending = (async () => {
      for (let block = 0; block < GiB / MiB; block++) await big.write(patterns[block % 16]!)
      await big.closeWrite()
    })()
    const bigRemote = await accept(server)
    let reached!: () => void
    const underWay = new Promise<void>((resolve) => (reached = resolve))
    const progress: Progress = { received: 0, maxBuffered: 0, threshold: 64 * MiB, reached }
    const bigDone = receiveBig(bigRemote, progress)

    // Answer small requests on the server, each on its own stream.
    const answering = (async () => {
      for (let i = 0; i < BURST; i++) {
        const request = await accept(server)
        void readText(request).then((text) => send(request, `answer to ${text}`))
      }
    })()

    // Start the burst once the big stream is well under way.
    await underWay
    const burst = await Promise.all(
      Array.from({ length: BURST }, async (_, i) => {
        const stream = await client.openStream()
        await send(stream, `request ${i}`)
        return readText(stream)
      }),
    )
    const receivedWhenBurstDone = progress.received
    expect(burst).toEqual(Array.from({ length: BURST }, (_, i) => `answer to request ${i}`))
    await answering
    // The small streams did not wait for the big one.
    expect(receivedWhenBurstDone).toBeLessThan(GiB)

    await sending
    expect(await bigDone).toBe(0)
    expect(progress.received).toBe(GiB)
    // The receiver never held more than the largest window.
    expect(progress.maxBuffered).toBeLessThanOrEqual(16 * MiB)
  })
})
