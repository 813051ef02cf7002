// Connections that never finish their handshake: idle floods from many sources or from
// one, and the rate limit on what the listener reports about them.
import { once } from 'node:events'
import { connect as netConnect, type Socket } from 'node:net'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { P2PError, SuppressedErrorsError } from '../src/index.js'
import { sourceOf } from '../src/tcp/source.js'
import { listener, transport } from './tcp-helpers.js'

const secret = 'handshake limits test secret'
const sockets: Socket[] = []
afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy()
})

/** An idle TCP connection from `localAddress`: it connects and sends nothing. */
async function idle(address: string, localAddress: string): Promise<Socket> {
  const [host, port] = address.split(':') as [string, string]
  const socket = netConnect({ host, port: Number(port), localAddress })
  socket.on('error', () => {})
  sockets.push(socket)
  await once(socket, 'connect')
  return socket
}

/** The n-th address of 127.1.0.0/16. */
function loopback(n: number): string {
  return `127.1.${n >> 8}.${n & 255}`
}

function codes(errors: P2PError[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const e of errors) out[e.code] = (out[e.code] ?? 0) + 1
  return out
}

describe('handshake limits', () => {
  it('admits an honest peer while 1,000 idle sockets from 1,000 addresses flood the listener', async () => {
    const errors: P2PError[] = []
    // Deadlines far away: only the limits drop anything here.
    const l = await listener({ clusterSecret: secret, firstByteTimeout: 60_000, handshakeTimeout: 60_000, inboundErrorBurst: 100_000, onInboundError: (e) => errors.push(e) })
    for (let i = 0; i < 500; i += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => idle(l.address, loopback(i + j))))
    const dialler = await transport({ clusterSecret: secret })
    // The flood goes on while the honest peer dials.
    const flood = (async () => {
      for (let i = 500; i < 1000; i += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => idle(l.address, loopback(i + j))))
    })()
    const connection = await dialler.dial(l.address)
    await flood
    expect(connection.remoteNodeId).toBe(l.identity.nodeId)
    // And again with all 1,000 open: the oldest idle sockets make room.
    await expect(dialler.dial(l.address)).resolves.toMatchObject({ remoteNodeId: l.identity.nodeId })
    // The listener takes the connection once its side of the handshake ends, which may be just after the dialler's.
    await vi.waitFor(() => expect(l.accepted).toHaveLength(2), { timeout: 10_000 })
    expect(codes(errors).ERR_HANDSHAKE_LIMIT).toBeGreaterThan(0)
  })

  it('admits an honest peer while 1,000 idle sockets from one address flood the listener', async () => {
    const errors: P2PError[] = []
    // Deadlines far away: only the limits drop anything here.
    const l = await listener({ clusterSecret: secret, firstByteTimeout: 60_000, handshakeTimeout: 60_000, inboundErrorBurst: 100_000, onInboundError: (e) => errors.push(e) })
    for (let i = 0; i < 1000; i += 50) {
      await Promise.all(Array.from({ length: 50 }, () => idle(l.address, '127.0.0.2').catch(() => undefined)))
    }
    const dialler = await transport({ clusterSecret: secret })
    await expect(dialler.dial(l.address)).resolves.toMatchObject({ remoteNodeId: l.identity.nodeId })
    // All but 16 were dropped at accept: one address holds at most maxPendingHandshakesPerSource.
    expect(codes(errors).ERR_HANDSHAKE_LIMIT).toBeGreaterThanOrEqual(1000 - 16)
    expect(errors.filter((e) => e.code === 'ERR_HANDSHAKE_LIMIT')[0]!.message).toContain('127.0.0.2')
  })

  it('drops a connection that sends no byte within firstByteTimeout, well before handshakeTimeout', async () => {
    const l = await listener({ clusterSecret: secret, firstByteTimeout: 100, handshakeTimeout: 60_000 })
    const refused = l.nextInboundError()
    const socket = await idle(l.address, '127.0.0.3')
    await once(socket, 'close')
    expect(await refused).toMatchObject({ code: 'ERR_PEER_TIMEOUT', message: expect.stringContaining('no byte') as unknown })
  })

  it('reports the first failures one by one and the rest as one ERR_SUPPRESSED summary', async () => {
    const errors: P2PError[] = []
    const l = await listener({
      clusterSecret: secret,
      maxPendingHandshakesPerSource: 1,
      handshakeTimeout: 60_000,
      firstByteTimeout: 60_000,
      inboundErrorBurst: 3,
      inboundErrorInterval: 200,
      onInboundError: (e) => errors.push(e),
    })
    await idle(l.address, '127.0.0.4')
    await Promise.all(Array.from({ length: 9 }, () => idle(l.address, '127.0.0.4')))
    let summary: SuppressedErrorsError
    for (;;) {
      const error = await l.nextInboundError()
      if (error.code === 'ERR_SUPPRESSED') {
        summary = error as SuppressedErrorsError
        break
      }
    }
    expect(errors.slice(0, 3).map((e) => e.code)).toEqual(['ERR_HANDSHAKE_LIMIT', 'ERR_HANDSHAKE_LIMIT', 'ERR_HANDSHAKE_LIMIT'])
    expect(summary).toMatchObject({ count: 6, codes: { ERR_HANDSHAKE_LIMIT: 6 } })
    expect(errors).toHaveLength(4)
  })

  it('counts IPv4 addresses one by one and IPv6 addresses by /64', () => {
    expect(sourceOf('10.0.0.1')).toBe('10.0.0.1')
    expect(sourceOf('::ffff:10.0.0.1')).toBe('10.0.0.1')
    expect(sourceOf('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64')
    expect(sourceOf('2001:db8:1:2:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64')
    expect(sourceOf('2001:db8::1')).toBe('2001:db8:0:0::/64')
    expect(sourceOf('::1')).toBe('0:0:0:0::/64')
    expect(sourceOf(undefined)).toBe('unknown')
  })
})
