// @dcas/p2p over TCP between two processes: one stream of 1 GiB and 8 concurrent
// streams (1 GiB in all), beside a raw TLS 1.3 socket between the same two
// processes in the same run (the ceiling). This process sends; a child process
// (this file with --child) receives and reports over IPC. Peak RSS is sampled
// in both processes during each measurement. The three take turns in rounds (lib.ts: a
// warm-up, then `--runs` recorded runs), each round's figures reported for the harness.
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { connect, createServer, type TLSSocket } from 'node:tls'
import { fileURLToPath } from 'node:url'
import { createIdentity, tcpTransport, type Connection, type Stream } from '@dcas/p2p'
import { GiB, inTurn, MiB, record, rounds, rssSampler, size, withCpu, type Round } from '../lib.js'

const CHUNK = 64 * 1024
/** The raw socket keeps up to this much queued, as the muxer does (its send buffer limit). */
const RAW_SEND_BUFFER = 1024 * 1024
/** Bytes each measurement sends in a warm-up round (JIT, TCP windows, muxer windows). */
const WARM_UP = 16 * MiB

/** One measurement: `send` transfers `bytes` to the receiver. */
interface Bench {
  name: string
  ceiling?: string
  send(bytes: number): Promise<void>
}
const clusterSecret = 'bench secret'

type ToChild = { type: 'start'; bytes: number }
type FromChild =
  | { type: 'ready'; tlsPort: number; p2pAddress: string }
  | { type: 'started' }
  | { type: 'received'; bytes: number; peakRssMiB: number }

async function child(): Promise<void> {
  const send = (message: FromChild): void => void process.send?.(message)
  const identity = await createIdentity()
  const rss = rssSampler()
  let expected = 0
  let received = 0
  const count = (bytes: number): void => {
    received += bytes
    if (received === expected) send({ type: 'received', bytes: received, peakRssMiB: rss.stop() })
  }
  process.on('message', (message: ToChild) => {
    expected = message.bytes
    received = 0
    rss.start()
    send({ type: 'started' })
  })

  const key = identity.privateKey.export({ type: 'pkcs8', format: 'pem' })
  const tls = createServer({ key, cert: identity.certificate, minVersion: 'TLSv1.3', requestCert: true, rejectUnauthorized: false }, (socket) => {
    socket.on('data', (chunk: Buffer) => count(chunk.length))
  })
  tls.listen(0, '127.0.0.1')
  await once(tls, 'listening')

  const transport = tcpTransport({ identity, clusterSecret })
  const p2pAddress = await transport.listen('127.0.0.1:0', (connection) => {
    void (async () => {
      for await (const stream of connection.incoming) {
        void (async () => {
          for await (const chunk of stream) count(chunk.length)
          // The answer: our half-close, once every byte was read.
          await stream.closeWrite()
        })()
      }
    })()
  })
  send({ type: 'ready', tlsPort: (tls.address() as { port: number }).port, p2pAddress })
  process.on('disconnect', () => process.exit(0))
}

async function parent(): Promise<void> {
  const total = size(GiB, 16 * MiB)
  const label = total >= GiB ? `${total / GiB} GiB` : `${total / MiB} MiB`
  const receiver: ChildProcess = fork(fileURLToPath(import.meta.url), ['--child'], {
    // The parent's node flags (`--import tsx`, and `--cpu-prof` when profiling) apply to the receiver too.
    execArgv: process.execArgv,
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  })
  const [ready] = (await once(receiver, 'message')) as [FromChild]
  if (ready.type !== 'ready') throw new Error('the receiver did not start')
  const rss = rssSampler()
  const block = Buffer.alloc(CHUNK, 0x5a)

  /** Sends `bytes` with `send` while both processes sample RSS, until the receiver has every byte; records the round. */
  async function measure(bench: Bench, round: Round): Promise<void> {
    const bytes = round.warmUp ? WARM_UP : total
    // The receiver must be counting before the first byte leaves.
    receiver.send({ type: 'start', bytes } satisfies ToChild)
    await once(receiver, 'message')
    const done = once(receiver, 'message') as Promise<[FromChild]>
    rss.start()
    const started = performance.now()
    const { result: report, cpuSeconds } = await withCpu([process.pid, receiver.pid!], async () => {
      await bench.send(bytes)
      return (await done)[0]
    })
    const seconds = (performance.now() - started) / 1000
    const senderPeakRssMiB = rss.stop()
    if (report.type !== 'received' || report.bytes !== bytes) throw new Error(`the receiver got ${JSON.stringify(report)}`)
    const { name, ceiling } = bench
    const peakRssMiB = [senderPeakRssMiB, report.peakRssMiB]
    const processes = ['sender', 'receiver']
    record(round, { name, unit: 'MB/s', value: bytes / 1e6 / seconds, peakRssMiB, processes, ...(ceiling === undefined ? { isCeiling: true } : { ceiling }) })
    const cpuName = (of: string): string => `${of}: CPU per GB, sender + receiver`
    record(round, { name: cpuName(name), unit: 'CPU s/GB', value: cpuSeconds / (bytes / 1e9), peakRssMiB, processes, ...(ceiling === undefined ? { isCeiling: true } : { ceiling: cpuName(ceiling) }) })
  }

  async function writeSocket(socket: TLSSocket, bytes: number): Promise<void> {
    for (let sent = 0; sent < bytes; sent += CHUNK) {
      socket.write(block)
      if (socket.writableLength >= RAW_SEND_BUFFER) await once(socket, 'drain')
    }
  }

  async function writeStream(stream: Stream, bytes: number): Promise<void> {
    for (let sent = 0; sent < bytes; sent += CHUNK) await stream.write(block)
    await stream.closeWrite()
  }

  // Both connections are up before anything is timed: the figures are transfer, not handshake.
  const identity = await createIdentity()
  const key = identity.privateKey.export({ type: 'pkcs8', format: 'pem' })
  const socket = connect({ host: '127.0.0.1', port: ready.tlsPort, key, cert: identity.certificate, minVersion: 'TLSv1.3', rejectUnauthorized: false })
  await once(socket, 'secureConnect')
  const transport = tcpTransport({ identity, clusterSecret })
  const connection: Connection = await transport.dial(ready.p2pAddress)

  const ceiling = `p2p: raw TLS 1.3 socket, ${label}`
  const benches: Bench[] = [
    { name: ceiling, send: (bytes) => writeSocket(socket, bytes) },
    {
      name: `p2p: TCP transport, 1 stream of ${label}`,
      ceiling,
      send: async (bytes) => writeStream(await connection.openStream(), bytes),
    },
    {
      // As a store sends chunks: one stream per 1 MiB, answered once read, four at a time.
      name: `p2p: TCP transport, a stream per 1 MiB answered when read (4 in flight), ${label} in all`,
      ceiling,
      send: async (bytes) => {
        let next = 0
        await Promise.all(
          Array.from({ length: 4 }, async () => {
            while (next < bytes / MiB) {
              next++
              const stream = await connection.openStream()
              for (let sent = 0; sent < MiB; sent += CHUNK) await stream.write(block)
              await stream.closeWrite()
              for await (const _ of stream);
            }
          }),
        )
      },
    },
    {
      name: `p2p: TCP transport, 8 concurrent streams, ${label} in all`,
      ceiling,
      send: async (bytes) => {
        const streams = await Promise.all(Array.from({ length: 8 }, () => connection.openStream()))
        await Promise.all(streams.map((s) => writeStream(s, bytes / 8)))
      },
    },
  ]
  for (const round of rounds()) await inTurn(round, benches.map((bench) => () => measure(bench, round)))

  socket.end()
  await transport.close()
  receiver.disconnect()
  await once(receiver, 'exit')
}

if (process.argv.includes('--child')) await child()
else await parent()
