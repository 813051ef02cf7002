// Raw ceilings of this machine, beside nothing: SHA-256, fs write + fsync, fs read, and a TLS 1.3
// socket between two processes, each over the same bytes, interleaved round by round. The suites
// compare their code with ceilings of their own measured beside it; these four are the machine's
// reference figures (BENCHMARKS.md quotes them to say what the hardware gives).
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, open, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect, createServer } from 'node:tls'
import { fileURLToPath } from 'node:url'
import { createIdentity } from '@dcas/p2p'
import { bytesLabel, inTurn, isWorker, MiB, peakRssMiB, record, rounds, serveWorker, size, startWorker, throughput } from '../lib.js'

const total = size(1024 * MiB, 16 * MiB)
const label = bytesLabel(total)
const block = randomBytes(MiB)

async function tlsCredentials(): Promise<{ key: string; cert: string }> {
  const identity = await createIdentity()
  return { key: identity.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, cert: identity.certificate }
}

if (isWorker) {
  // The receiving end of the TLS socket: counts bytes; `received` resolves once `until` have come in all.
  let received = 0
  const waiting: Array<{ until: number; resolve: () => void }> = []
  const server = createServer({ ...(await tlsCredentials()), minVersion: 'TLSv1.3', requestCert: true, rejectUnauthorized: false }, (socket) => {
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length
      for (let i = waiting.length - 1; i >= 0; i--) {
        if (received >= waiting[i]!.until) waiting.splice(i, 1)[0]!.resolve()
      }
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  serveWorker(async (request) => {
    if (request.op === 'port') return (server.address() as { port: number }).port
    if (request.op === 'received') return new Promise<number>((resolve) => waiting.push({ until: request.until as number, resolve: () => resolve(peakRssMiB()) }))
    throw new Error(`unknown op ${request.op}`)
  })
} else {
  const dir = await mkdtemp(join(tmpdir(), 'dcas-bench-ceilings-'))
  const sink = await startWorker(fileURLToPath(import.meta.url))
  try {
    const socket = connect({ host: '127.0.0.1', port: await sink.call<number>({ op: 'port' }), ...(await tlsCredentials()), minVersion: 'TLSv1.3', rejectUnauthorized: false })
    await once(socket, 'secureConnect')
    let sent = 0
    const file = join(dir, 'data')
    const ceiling = (name: string) => ({ name: `ceiling: ${name}, ${label}`, unit: 'MB/s' as const, isCeiling: true })

    for (const round of rounds()) {
      const [sha, write, read, tls] = await inTurn(round, [
        () =>
          throughput(total, () => {
            const hash = createHash('sha256')
            for (let done = 0; done < total; done += MiB) hash.update(block)
            hash.digest()
          }),
        () =>
          throughput(total, async () => {
            const handle = await open(file, 'w')
            for (let done = 0; done < total; done += MiB) await handle.write(block)
            await handle.sync()
            await handle.close()
          }),
        // Reads what the last write left (from the page cache, as any read of fresh data is).
        async () => {
          if (round.index === 0) {
            const handle = await open(file, 'w')
            for (let done = 0; done < total; done += MiB) await handle.write(block)
            await handle.close()
          }
          const buffer = Buffer.allocUnsafe(MiB)
          return throughput(total, async () => {
            const handle = await open(file, 'r')
            for (let done = 0; done < total; ) done += (await handle.read(buffer, 0, MiB, done)).bytesRead
            await handle.close()
          })
        },
        () =>
          throughput(total, async () => {
            sent += total
            const arrived = sink.call<number>({ op: 'received', until: sent })
            for (let done = 0; done < total; done += MiB) if (!socket.write(block)) await once(socket, 'drain')
            await arrived
          }),
      ])
      const own = [peakRssMiB()]
      record(round, { ...ceiling('sha256'), value: sha!, peakRssMiB: own })
      record(round, { ...ceiling('fs write 1 MiB pieces + one fsync'), value: write!, peakRssMiB: own })
      record(round, { ...ceiling('fs read 1 MiB pieces (page cache)'), value: read!, peakRssMiB: own })
      record(round, { ...ceiling('TLS 1.3 socket between two processes'), value: tls!, peakRssMiB: [...own, (await sink.usage()).maxRss / MiB], processes: ['sender', 'receiver'] })
    }
    socket.destroy()
  } finally {
    await sink.close()
    await rm(dir, { recursive: true, force: true })
  }
}
