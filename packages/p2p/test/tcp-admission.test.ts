// Admission through the TCP transport: who gets a connection, who is refused, and how.
import { once } from 'node:events'
import { connect as netConnect, createServer as netServer, type Server as NetServer, type Socket } from 'node:net'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { afterEach, describe, expect, it } from 'vitest'
import { createIdentity } from '../src/index.js'
import { admit } from '../src/tcp/admission.js'
import { stretchClusterSecret } from '../src/tcp/cluster-secret.js'
import { tlsCredentials } from '../src/tcp/tls.js'
import { echo, listener, roundTrip, transport } from './tcp-helpers.js'

const secret = 'the cluster secret'
const sockets: Socket[] = []
const servers: NetServer[] = []
afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy()
  for (const s of servers.splice(0)) s.close()
})

function rawConnect(address: string): Socket {
  const [host, port] = address.split(':') as [string, string]
  const socket = netConnect({ host, port: Number(port) })
  socket.on('error', () => {})
  sockets.push(socket)
  return socket
}

async function tlsClient(address: string, withCertificate: boolean): Promise<TLSSocket> {
  const [host, port] = address.split(':') as [string, string]
  const socket = tlsConnect({
    host,
    port: Number(port),
    minVersion: 'TLSv1.3',
    rejectUnauthorized: false,
    ...(withCertificate ? tlsCredentials(await createIdentity()) : {}),
  })
  socket.on('error', () => {})
  sockets.push(socket)
  await once(socket, 'secureConnect')
  return socket
}

describe('TCP transport admission', () => {
  it('connects two nodes that share the cluster secret, each knowing the other by node id', async () => {
    const l = await listener({ clusterSecret: secret })
    const dialler = await transport({ clusterSecret: secret })
    const connection = await dialler.dial(l.address)
    const inbound = await l.nextConnection()
    expect(connection.remoteNodeId).toBe(l.identity.nodeId)
    expect(connection.direction).toBe('outbound')
    expect(inbound.remoteNodeId).toBe(dialler.nodeId)
    expect(inbound.direction).toBe('inbound')
    expect(inbound.remoteAddress).toMatch(/^127\.0\.0\.1:\d+$/)
    echo(inbound)
    expect((await roundTrip(connection, Buffer.from('ping'))).toString()).toBe('ping')
  })

  it('accepts the cluster secret as bytes or as the same string', async () => {
    const l = await listener({ clusterSecret: new TextEncoder().encode(secret) })
    const dialler = await transport({ clusterSecret: secret })
    await expect(dialler.dial(l.address)).resolves.toMatchObject({ remoteNodeId: l.identity.nodeId })
  })

  it('refuses a dialler with a different secret: ERR_PEER_UNAUTHORIZED, and the handler never sees it', async () => {
    const l = await listener({ clusterSecret: secret })
    const dialler = await transport({ clusterSecret: 'another secret' })
    const refused = l.nextInboundError()
    await expect(dialler.dial(l.address)).rejects.toMatchObject({ code: 'ERR_PEER_UNAUTHORIZED' })
    expect(await refused).toMatchObject({ code: 'ERR_PEER_UNAUTHORIZED' })
    expect(l.accepted).toHaveLength(0)
  })

  it('refuses a TLS client that presents no certificate, even with the right secret', async () => {
    const l = await listener({ clusterSecret: secret })
    const socket = await tlsClient(l.address, false)
    const refused = l.nextInboundError()
    const policy = { prs: await stretchClusterSecret(new TextEncoder().encode(secret)), allowList: new Set<string>(), versions: [2] }
    await expect(admit(socket, 'outbound', policy, new AbortController().signal)).rejects.toMatchObject({
      code: 'ERR_PEER_UNAUTHORIZED',
    })
    expect(await refused).toMatchObject({ code: 'ERR_PEER_UNAUTHORIZED' })
    expect(l.accepted).toHaveLength(0)
  })

  it('refuses a dialler missing from the allow-list when there is no secret', async () => {
    const l = await listener({ allowList: ['ab'.repeat(32)] })
    const dialler = await transport({ allowList: [l.identity.nodeId] })
    const refused = l.nextInboundError()
    await expect(dialler.dial(l.address)).rejects.toMatchObject({ code: 'ERR_PEER_UNAUTHORIZED' })
    expect(await refused).toMatchObject({ code: 'ERR_PEER_UNAUTHORIZED' })
    expect(l.accepted).toHaveLength(0)
  })

  it('connects two nodes on each other’s allow-list without any secret', async () => {
    const listenerIdentity = await createIdentity()
    const diallerIdentity = await createIdentity()
    const l = await listener({ identity: listenerIdentity, allowList: [diallerIdentity.nodeId.toUpperCase()] })
    const dialler = await transport({ identity: diallerIdentity, allowList: [listenerIdentity.nodeId] })
    const connection = await dialler.dial(l.address)
    expect(connection.remoteNodeId).toBe(listenerIdentity.nodeId)
    expect((await l.nextConnection()).remoteNodeId).toBe(diallerIdentity.nodeId)
  })

  it('refuses a listener that is not on the dialler’s allow-list', async () => {
    const l = await listener({ clusterSecret: secret })
    const dialler = await transport({ allowList: ['cd'.repeat(32)] })
    await expect(dialler.dial(l.address)).rejects.toMatchObject({ code: 'ERR_PEER_UNAUTHORIZED' })
    expect(l.accepted).toHaveLength(0)
  })

  it('refuses a listener whose node id is not the one the dialler expects', async () => {
    const l = await listener({ clusterSecret: secret })
    const dialler = await transport({ clusterSecret: secret })
    await expect(dialler.dial(l.address, { remoteNodeId: 'ef'.repeat(32) })).rejects.toMatchObject({
      code: 'ERR_PEER_UNAUTHORIZED',
    })
    await expect(dialler.dial(l.address, { remoteNodeId: l.identity.nodeId })).resolves.toMatchObject({
      remoteNodeId: l.identity.nodeId,
    })
  })

  it('refuses a protocol-1 node with ERR_PROTOCOL_VERSION on both sides', async () => {
    const l = await listener({ clusterSecret: secret })
    const refused = l.nextInboundError()
    const socket = await tlsClient(l.address, true)
    // A protocol-1 dialler: hello with versions [1] and an HMAC proof, then it waits for the verdict.
    socket.write(Buffer.concat([Buffer.from('dcas'), Buffer.from([0x01, 1, 0, 1, 32]), Buffer.alloc(32, 7)]))
    expect(await refused).toMatchObject({ code: 'ERR_PROTOCOL_VERSION', message: expect.stringContaining('upgrade') as unknown })
    expect(l.accepted).toHaveLength(0)
  })

  it('refuses protocolVersions it does not speak with ERR_INVALID_OPTIONS', async () => {
    await expect(transport({ clusterSecret: secret, protocolVersions: [1] })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTIONS' })
    await expect(transport({ clusterSecret: secret, protocolVersions: [] })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTIONS' })
  })

  it('closes a plain TCP client that speaks HTTP, and keeps listening', async () => {
    const l = await listener({ clusterSecret: secret })
    const socket = rawConnect(l.address)
    const refused = l.nextInboundError()
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    await once(socket, 'close')
    expect(await refused).toMatchObject({ code: 'ERR_PROTOCOL' })
    const dialler = await transport({ clusterSecret: secret })
    await expect(dialler.dial(l.address)).resolves.toMatchObject({ remoteNodeId: l.identity.nodeId })
  })

  it('closes a TLS 1.2 client during the TLS handshake', async () => {
    const l = await listener({ clusterSecret: secret })
    const [host, port] = l.address.split(':') as [string, string]
    const socket = tlsConnect({ host, port: Number(port), maxVersion: 'TLSv1.2', rejectUnauthorized: false })
    sockets.push(socket)
    const refused = l.nextInboundError()
    const [err] = (await once(socket, 'error')) as [Error]
    expect(err.message).toMatch(/alert|version/i)
    expect(await refused).toMatchObject({ code: 'ERR_PROTOCOL' })
  })

  it('drops a TCP client that sends nothing once the handshake timeout passes', async () => {
    const l = await listener({ clusterSecret: secret, handshakeTimeout: 200 })
    const socket = rawConnect(l.address)
    const refused = l.nextInboundError()
    const started = performance.now()
    await once(socket, 'close')
    expect(performance.now() - started).toBeGreaterThanOrEqual(150)
    expect(await refused).toMatchObject({ code: 'ERR_PEER_TIMEOUT' })
  })

  it('drops a TLS client that never sends its hello once the handshake timeout passes', async () => {
    const l = await listener({ clusterSecret: secret, handshakeTimeout: 300 })
    const socket = await tlsClient(l.address, true)
    const refused = l.nextInboundError()
    socket.resume() // discard the listener's hello, so its FIN is seen
    await once(socket, 'close')
    expect(await refused).toMatchObject({ code: 'ERR_PEER_TIMEOUT' })
    expect(l.accepted).toHaveLength(0)
  })

  it('closes a TLS client that sends garbage instead of a hello', async () => {
    const l = await listener({ clusterSecret: secret })
    const socket = await tlsClient(l.address, true)
    const refused = l.nextInboundError()
    socket.resume() // discard the listener's hello, so its FIN is seen
    socket.write(Buffer.alloc(64, 0xff))
    await once(socket, 'close')
    expect(await refused).toMatchObject({ code: 'ERR_PROTOCOL' })
  })
})

describe('TCP transport dial', () => {
  it('fails fast with ERR_DIAL_FAILED when nothing listens', async () => {
    const probe = netServer()
    servers.push(probe)
    probe.listen(0, '127.0.0.1')
    await once(probe, 'listening')
    const { port } = probe.address() as { port: number }
    probe.close()
    await once(probe, 'close')
    const dialler = await transport({ clusterSecret: secret })
    await expect(dialler.dial(`127.0.0.1:${port}`)).rejects.toMatchObject({ code: 'ERR_DIAL_FAILED' })
  })

  it('fails with ERR_DIAL_FAILED after the handshake timeout when the remote accepts but never answers', async () => {
    const silent = netServer((socket) => sockets.push(socket))
    servers.push(silent)
    silent.listen(0, '127.0.0.1')
    await once(silent, 'listening')
    const { port } = silent.address() as { port: number }
    const dialler = await transport({ clusterSecret: secret, handshakeTimeout: 200 })
    await expect(dialler.dial(`127.0.0.1:${port}`)).rejects.toMatchObject({ code: 'ERR_DIAL_FAILED' })
  })

  it('fails with ERR_ABORTED when the signal fires mid-dial', async () => {
    const silent = netServer((socket) => sockets.push(socket))
    servers.push(silent)
    silent.listen(0, '127.0.0.1')
    await once(silent, 'listening')
    const { port } = silent.address() as { port: number }
    const dialler = await transport({ clusterSecret: secret })
    const controller = new AbortController()
    silent.once('connection', () => controller.abort())
    await expect(dialler.dial(`127.0.0.1:${port}`, { signal: controller.signal })).rejects.toMatchObject({ code: 'ERR_ABORTED' })
  })

  it('fails with ERR_ABORTED on an already aborted signal', async () => {
    const dialler = await transport({ clusterSecret: secret })
    await expect(dialler.dial('127.0.0.1:1', { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ERR_ABORTED' })
  })

  it('rejects an address that is not host:port with ERR_INVALID_ADDRESS', async () => {
    const dialler = await transport({ clusterSecret: secret })
    for (const address of ['localhost', '127.0.0.1:', '127.0.0.1:0', '127.0.0.1:70000', '[zz]:80', ':80']) {
      await expect(dialler.dial(address), address).rejects.toMatchObject({ code: 'ERR_INVALID_ADDRESS' })
    }
  })
})

describe('TCP transport options and lifecycle', () => {
  it('rejects an empty cluster secret and a malformed allow-list entry with ERR_INVALID_OPTIONS', async () => {
    await expect(transport({ clusterSecret: '' })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTIONS' })
    await expect(transport({ allowList: ['not-a-node-id'] })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTIONS' })
    await expect(transport({ handshakeTimeout: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTIONS' })
  })

  it('rejects an identity whose node id does not match its certificate with ERR_INVALID_OPTIONS', async () => {
    const [a, b] = await Promise.all([createIdentity(), createIdentity()])
    await expect(transport({ identity: { ...a, nodeId: b.nodeId }, clusterSecret: secret })).rejects.toMatchObject({
      code: 'ERR_INVALID_OPTIONS',
    })
  })

  it('rejects an invalid multiplexer option at construction with ERR_INVALID_OPTIONS', async () => {
    await expect(transport({ clusterSecret: secret, deadPeerTimeout: -1 })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTIONS' })
    await expect(transport({ clusterSecret: secret, maxStreams: 1.5 })).rejects.toMatchObject({ code: 'ERR_INVALID_OPTIONS' })
  })

  it('resolves listen to the bound address and exposes it', async () => {
    const l = await listener({ clusterSecret: secret })
    expect(l.address).toMatch(/^127\.0\.0\.1:[1-9]\d*$/)
    expect(l.transport.address).toBe(l.address)
  })

  it('refuses to listen twice with ERR_LISTEN_FAILED', async () => {
    const l = await listener({ clusterSecret: secret })
    await expect(l.transport.listen('127.0.0.1:0', () => {})).rejects.toMatchObject({ code: 'ERR_LISTEN_FAILED' })
  })

  it('fails to listen on a port in use with ERR_ADDRESS_IN_USE', async () => {
    const l = await listener({ clusterSecret: secret })
    const other = await transport({ clusterSecret: secret })
    await expect(other.listen(l.address, () => {})).rejects.toMatchObject({ code: 'ERR_ADDRESS_IN_USE' })
  })

  it('releases the port on close, so a restarted node listens on the same port', async () => {
    const identity = await createIdentity()
    const first = await listener({ identity, clusterSecret: secret })
    const dialler = await transport({ clusterSecret: secret })
    await dialler.dial(first.address)
    await first.transport.close()
    const again = await transport({ identity, clusterSecret: secret })
    await expect(again.listen(first.address, () => {})).resolves.toBe(first.address)
  })

  it('closes every connection on close, and the remote sees it closed', async () => {
    const l = await listener({ clusterSecret: secret })
    const dialler = await transport({ clusterSecret: secret })
    const connection = await dialler.dial(l.address)
    await l.nextConnection()
    await l.transport.close()
    await connection.closed
    expect(connection.open).toBe(false)
  })

  it('refuses to dial after close with ERR_DIAL_FAILED', async () => {
    const dialler = await transport({ clusterSecret: secret })
    await dialler.close()
    await expect(dialler.dial('127.0.0.1:1')).rejects.toMatchObject({ code: 'ERR_DIAL_FAILED' })
  })
})
