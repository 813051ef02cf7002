// The fault injector is checked before it is trusted: through a proxy to a local sink, bytes
// pass intact, a flip changes exactly the chosen bit, a truncation ends the stream cleanly at the
// chosen byte, a reset fails it, a cut refuses connections, and a canary is seen across reads.
import { createServer, connect, type Socket } from 'node:net'
import { FaultProxy } from './proxy.js'

interface Sink {
  address: string
  /** Resolves with the bytes of the next connection and how it ended. */
  next(): Promise<{ bytes: Buffer; ended: 'end' | 'error' }>
  close(): Promise<void>
}

async function sink(): Promise<Sink> {
  const waiting: Array<(r: { bytes: Buffer; ended: 'end' | 'error' }) => void> = []
  const server = createServer((s) => {
    const parts: Buffer[] = []
    let settled = false
    const done = (ended: 'end' | 'error'): void => {
      if (settled) return
      settled = true
      waiting.shift()?.({ bytes: Buffer.concat(parts), ended })
      s.destroy()
    }
    s.on('data', (b: Buffer) => parts.push(b))
    s.on('end', () => done('end'))
    s.on('error', () => done('error'))
    s.on('close', () => done('error'))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const port = (server.address() as { port: number }).port
  return {
    address: `127.0.0.1:${port}`,
    next: () => new Promise((resolve) => waiting.push(resolve)),
    close: () => new Promise((r) => server.close(() => r())),
  }
}

async function send(address: string, bytes: Buffer): Promise<Socket> {
  const [host, port] = [address.split(':')[0]!, Number(address.split(':')[1])]
  const s = connect({ host, port })
  s.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve())
    s.once('close', () => reject(new Error('refused')))
  })
  // Several writes, so faults land inside a read as well as between reads.
  for (let at = 0; at < bytes.length; at += 10_000) s.write(bytes.subarray(at, at + 10_000))
  s.end()
  return s
}

/** Throws when the proxy does not inject what it is told. */
export async function checkProxy(): Promise<void> {
  const target = await sink()
  const canary = Buffer.from('SELFCHECK-CANARY')
  const proxy = new FaultProxy('selfcheck', target.address, [canary])
  await proxy.listen()
  const data = Buffer.alloc(200_000, 7)
  canary.copy(data, 9_995) // across the first two writes
  try {
    let got = target.next()
    await send(proxy.address, data)
    let r = await got
    if (!r.bytes.equals(data) || r.ended !== 'end') throw new Error('the proxy did not forward bytes intact')
    if (proxy.stats.canaryHits !== 1) throw new Error(`the proxy saw ${proxy.stats.canaryHits} canaries, not 1`)

    proxy.inject({ kind: 'flip', afterBytes: 123_456, bit: 5, direction: 'up' })
    got = target.next()
    await send(proxy.address, data)
    r = await got
    const diff = [...r.bytes.keys()].filter((i) => r.bytes[i] !== data[i])
    if (r.bytes.length !== data.length || diff.length !== 1 || diff[0] !== 123_456 || (r.bytes[123_456]! ^ data[123_456]!) !== 32) throw new Error('the flip did not change exactly bit 5 of byte 123456')

    proxy.inject({ kind: 'truncate', afterBytes: 54_321, direction: 'up' })
    got = target.next()
    await send(proxy.address, data)
    r = await got
    if (r.bytes.length !== 54_321 || r.ended !== 'end') throw new Error(`the truncation delivered ${r.bytes.length} bytes (${r.ended}), not 54321 and a clean end`)

    proxy.inject({ kind: 'reset', afterBytes: 30_000, direction: 'up' })
    got = target.next()
    const sender = await send(proxy.address, data)
    const senderFailed = new Promise<boolean>((resolve) => {
      sender.once('error', () => resolve(true))
      sender.once('close', (hadError: boolean) => resolve(hadError))
    })
    r = await got
    // The sender gets the RST; on loopback the receiver may see it as an end of stream.
    if (r.bytes.length !== 30_000 || !r.bytes.equals(data.subarray(0, 30_000))) throw new Error(`the reset let ${r.bytes.length} bytes through, not 30000`)
    if (!(await senderFailed)) throw new Error('the sender saw no reset')

    proxy.cut()
    const before = proxy.stats.connections
    const closedByProxy = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port: Number(proxy.address.split(':')[1]) })
      s.on('error', () => {})
      const timer = setTimeout(() => resolve(false), 2_000)
      s.once('close', () => {
        clearTimeout(timer)
        resolve(true)
      })
    })
    if (!closedByProxy || proxy.stats.connections !== before) throw new Error('a cut link accepted a connection')
    proxy.heal()
    got = target.next()
    await send(proxy.address, data)
    r = await got
    if (!r.bytes.equals(data)) throw new Error('a healed link did not forward intact')
  } finally {
    await proxy.close()
    await target.close()
  }
}
