// The multiplexer's own cost: one 1 GiB stream, and 8 concurrent streams, over an
// in-memory pipe and over a plain TCP loopback socket (no TLS), each beside the
// same pipe or socket carrying the bytes raw. Every case runs in a worker process of its
// own, so its peak RSS is its own; the workers take turns, one transfer each per round.
import { once } from 'node:events'
import { connect, createServer, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { createMemoryDuplexPair, createMuxedConnection, type Stream } from '@dcas/p2p'
import { argValue, GiB, inTurn, isWorker, MiB, peakRssMiB, record, rounds, serveWorker, size, startWorker, throughput } from '../lib.js'

const total = size(GiB, 8 * MiB)
const block = Buffer.alloc(MiB, 0x5a)

type Medium = 'memory' | 'tcp'
interface Case {
  name: string
  medium: Medium
  streams: number
  raw: boolean
}

const rawMemory = `ceiling: raw in-memory pipe, ${total / MiB} MiB`
const rawTcp = `ceiling: raw TCP loopback, ${total / MiB} MiB`
const cases: Case[] = [
  { name: rawMemory, medium: 'memory', streams: 1, raw: true },
  { name: `p2p muxer over in-memory pipe: 1 stream of ${total / MiB} MiB`, medium: 'memory', streams: 1, raw: false },
  { name: `p2p muxer over in-memory pipe: 8 streams, ${total / MiB} MiB in all`, medium: 'memory', streams: 8, raw: false },
  { name: rawTcp, medium: 'tcp', streams: 1, raw: true },
  { name: `p2p muxer over TCP (no TLS): 1 stream of ${total / MiB} MiB`, medium: 'tcp', streams: 1, raw: false },
  { name: `p2p muxer over TCP (no TLS): 8 streams, ${total / MiB} MiB in all`, medium: 'tcp', streams: 8, raw: false },
]

async function socketPair(medium: Medium): Promise<[Duplex, Duplex]> {
  if (medium === 'memory') return createMemoryDuplexPair()
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const accepted = once(server, 'connection') as Promise<[Socket]>
  const dialled = connect((server.address() as { port: number }).port, '127.0.0.1')
  await once(dialled, 'connect')
  const [inbound] = await accepted
  server.close()
  for (const socket of [dialled, inbound]) socket.setNoDelay(true)
  return [dialled, inbound]
}

async function rawTransfer(from: Duplex, to: Duplex, total: number): Promise<void> {
  let received = 0
  const done = new Promise<void>((resolve) =>
    to.on('data', (chunk: Buffer) => {
      received += chunk.length
      if (received >= total) resolve()
    }),
  )
  for (let sent = 0; sent < total; sent += block.length) {
    if (!from.write(block)) await once(from, 'drain')
  }
  await done
}

async function drain(stream: Stream): Promise<number> {
  let received = 0
  for await (const chunk of stream) received += chunk.length
  return received
}

async function muxedTransfer(from: Duplex, to: Duplex, streams: number, total: number): Promise<void> {
  const sender = createMuxedConnection(from, { direction: 'outbound', remoteNodeId: 'b'.repeat(64), remoteAddress: 'bench:1' })
  const receiver = createMuxedConnection(to, { direction: 'inbound', remoteNodeId: 'a'.repeat(64), remoteAddress: 'bench:2' })
  const receiving = (async () => {
    const reads: Promise<number>[] = []
    for await (const stream of receiver.incoming) {
      reads.push(drain(stream))
      if (reads.length === streams) break
    }
    const counts = await Promise.all(reads)
    if (counts.reduce((a, b) => a + b, 0) !== total) throw new Error('bytes went missing')
  })()
  await Promise.all(
    Array.from({ length: streams }, async () => {
      const stream = await sender.openStream()
      for (let sent = 0; sent < total / streams; sent += block.length) await stream.write(block)
      await stream.closeWrite()
    }),
  )
  await receiving
  sender.abort()
  receiver.abort()
}

/** One transfer of `bytes` for case `c`, on a fresh pipe or socket pair; returns MB/s. */
async function transferOnce(c: Case, bytes: number): Promise<number> {
  const [from, to] = await socketPair(c.medium)
  const value = await throughput(bytes, () => (c.raw ? rawTransfer(from, to, bytes) : muxedTransfer(from, to, c.streams, bytes)))
  from.destroy()
  to.destroy()
  return value
}

if (isWorker) {
  // One case per worker process, kept up for every round, so that its peak RSS is its own.
  const c = cases[Number(argValue('--case'))]!
  serveWorker(async (request) => ({ value: await transferOnce(c, request.bytes as number), peakRssMiB: peakRssMiB() }))
} else {
  const workers = await Promise.all(cases.map((_, i) => startWorker(fileURLToPath(import.meta.url), ['--case', String(i)])))
  try {
    for (const round of rounds()) {
      // Warm-ups move 64 MiB at most: enough for the JIT and the windows.
      const bytes = round.warmUp ? Math.min(total, 64 * MiB) : total
      const results = await inTurn(
        round,
        workers.map((w) => () => w.call<{ value: number; peakRssMiB: number }>({ op: 'transfer', bytes })),
      )
      cases.forEach((c, i) => {
        const { value, peakRssMiB: rss } = results[i]!
        const ceiling = c.raw ? undefined : c.medium === 'memory' ? rawMemory : rawTcp
        record(round, { name: c.name, unit: 'MB/s', value, peakRssMiB: [rss], ...(c.raw ? { isCeiling: true } : { ceiling }) })
      })
    }
  } finally {
    await Promise.all(workers.map((w) => w.close()))
  }
}
