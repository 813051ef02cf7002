import { afterEach, describe, expect, it } from 'vitest'
import { createMemoryNetwork, memoryTransport, type Connection, type MemoryNetwork, type Transport } from '../src/index.js'
import { accept, errorOf, readText, send } from './mux-helpers.js'

const transports: Transport[] = []

afterEach(async () => {
  await Promise.allSettled(transports.splice(0).map((t) => t.close({ signal: AbortSignal.timeout(1000) })))
})

function node(network: MemoryNetwork, options: { deadPeerTimeout?: number; keepAliveInterval?: number } = {}): Transport {
  const transport = memoryTransport({ network, clusterSecret: 'cluster', ...options })
  transports.push(transport)
  return transport
}

const accepted = new WeakMap<Transport, Connection[]>()

/** `dialler` connected to `listener` (which starts listening if it does not yet): both ends. */
async function connect(dialler: Transport, listener: Transport): Promise<{ outbound: Connection; inbound: Connection }> {
  let inbox = accepted.get(listener)
  if (inbox === undefined) {
    const connections: Connection[] = []
    inbox = connections
    accepted.set(listener, connections)
    await listener.listen('node:0', (connection) => connections.push(connection))
  }
  const outbound = await dialler.dial(listener.address!)
  const inbound = inbox.at(-1)
  if (inbound === undefined || inbound.remoteNodeId !== dialler.nodeId) throw new Error('the listener saw no connection')
  return { outbound, inbound }
}

async function exchange(connection: Connection, remote: Connection, text: string): Promise<string> {
  const stream = await connection.openStream()
  await send(stream, text)
  const accepted = await accept(remote)
  const got = await readText(accepted)
  await accepted.closeWrite()
  return got
}

describe('memory transport faults', () => {
  it('isolate() fails every connection of the node on both sides with ERR_CONNECTION_CLOSED', async () => {
    const network = createMemoryNetwork()
    const [a, b, c] = [node(network), node(network), node(network)]
    const ab = await connect(a, b)
    const cb = await connect(c, b)
    const ca = await connect(c, a)
    const stream = await ab.outbound.openStream()
    const reading = errorOf(readText(stream))
    network.isolate(b.nodeId)
    expect((await reading).code).toBe('ERR_CONNECTION_CLOSED')
    for (const connection of [ab.outbound, ab.inbound, cb.outbound, cb.inbound]) {
      expect(await connection.closed).toMatchObject({ code: 'ERR_CONNECTION_CLOSED' })
    }
    // Connections that do not involve the isolated node carry on.
    expect(await exchange(ca.outbound, ca.inbound, 'unaffected')).toBe('unaffected')
  })

  it('fails dials to and from an isolated node with ERR_DIAL_FAILED until it is healed', async () => {
    const network = createMemoryNetwork()
    const [a, b] = [node(network), node(network)]
    const addressA = await a.listen('a:0', () => {})
    const addressB = await b.listen('b:0', () => {})
    network.isolate(b.nodeId)
    expect(network.isIsolated(b.nodeId)).toBe(true)
    expect((await errorOf(a.dial(addressB))).code).toBe('ERR_DIAL_FAILED')
    expect((await errorOf(b.dial(addressA))).code).toBe('ERR_DIAL_FAILED')
    network.heal(b.nodeId)
    const connection = await a.dial(addressB)
    expect(connection.remoteNodeId).toBe(b.nodeId)
  })

  it('isolate() with silent lets the connections die of ERR_PEER_TIMEOUT', async () => {
    const network = createMemoryNetwork()
    const timeouts = { keepAliveInterval: 20, deadPeerTimeout: 100 }
    const [a, b] = [node(network, timeouts), node(network, timeouts)]
    const { outbound, inbound } = await connect(a, b)
    const stream = await outbound.openStream()
    const reading = errorOf(readText(stream))
    network.isolate(a.nodeId, { silent: true })
    expect((await reading).code).toBe('ERR_PEER_TIMEOUT')
    expect(await inbound.closed).toMatchObject({ code: 'ERR_PEER_TIMEOUT' })
  })

  it('disconnect() breaks one connection and leaves the others between the same nodes', async () => {
    const network = createMemoryNetwork()
    const [a, b] = [node(network), node(network)]
    const first = await connect(a, b)
    const second = await connect(a, b)
    network.disconnect(first.inbound)
    expect(await first.outbound.closed).toMatchObject({ code: 'ERR_CONNECTION_CLOSED' })
    expect(await first.inbound.closed).toMatchObject({ code: 'ERR_CONNECTION_CLOSED' })
    expect(await exchange(second.outbound, second.inbound, 'second')).toBe('second')
  })
})

describe('memory transport addresses and options', () => {
  it('binds port 0 to distinct free ports and refuses a taken address with ERR_ADDRESS_IN_USE', async () => {
    const network = createMemoryNetwork()
    const [a, b, c] = [node(network), node(network), node(network)]
    const first = await a.listen('host:0', () => {})
    const second = await b.listen('host:0', () => {})
    expect(first).toMatch(/^host:\d+$/)
    expect(second).not.toBe(first)
    expect((await errorOf(c.listen(first, () => {}))).code).toBe('ERR_ADDRESS_IN_USE')
    expect((await errorOf(a.listen('other:0', () => {}))).code).toBe('ERR_ADDRESS_IN_USE')
  })

  it('gives the listener the dialler\'s host as the remote address', async () => {
    const network = createMemoryNetwork()
    const [a, b] = [node(network), node(network)]
    await a.listen('alpha:0', () => {})
    const { inbound, outbound } = await connect(a, b)
    expect(outbound.remoteAddress).toMatch(/^node:\d+$/)
    expect(inbound.remoteAddress).toMatch(/^alpha:\d+$/)
    expect(outbound.remoteAddress).toBe(b.address)
  })

  it('aborts only the connection whose handler throws', async () => {
    const network = createMemoryNetwork()
    const [a, b] = [node(network), node(network)]
    let calls = 0
    const address = await b.listen('b:0', () => {
      calls++
      if (calls === 1) throw new Error('handler bug')
    })
    const failed = await a.dial(address)
    expect(await failed.closed).toMatchObject({ code: 'ERR_CONNECTION_CLOSED' })
    const fine = await a.dial(address)
    expect(fine.open).toBe(true)
  })

  it('uses the node id it is given and rejects malformed ids', () => {
    const network = createMemoryNetwork()
    const nodeId = 'c'.repeat(64)
    expect(memoryTransport({ network, nodeId }).nodeId).toBe(nodeId)
    expect(() => memoryTransport({ network, nodeId: 'C'.repeat(64) })).toThrow(TypeError)
    expect(() => memoryTransport({ network, allowList: ['short'] })).toThrow(TypeError)
    expect(() => memoryTransport({ network: {} as MemoryNetwork })).toThrow(TypeError)
    expect(() => memoryTransport({ network, clusterSecret: '' })).toThrow(TypeError)
  })

  it('rejects a dial after close() with ERR_DIAL_FAILED', async () => {
    const network = createMemoryNetwork()
    const [a, b] = [node(network), node(network)]
    const address = await b.listen('b:0', () => {})
    await a.close()
    expect((await errorOf(a.dial(address))).code).toBe('ERR_DIAL_FAILED')
  })
})
