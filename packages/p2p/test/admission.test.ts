// Admission on raw TLS 1.3 sockets, below the transport: both roles, every refusal.
import { once } from 'node:events'
import { connect, createServer, type Server, type TLSSocket } from 'node:tls'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createIdentity, type NodeIdentity } from '../src/index.js'
import {
  admissionProof,
  admit,
  type AdmissionPolicy,
  encodeHello,
  encodeVerdict,
  highestCommonVersion,
  readExactly,
  readHello,
  Status,
} from '../src/tcp/admission.js'
import { tlsCredentials } from '../src/tcp/tls.js'

const secret = new TextEncoder().encode('cluster secret')
const otherSecret = new TextEncoder().encode('another secret')
const forever = new AbortController().signal

let serverIdentity: NodeIdentity
let clientIdentity: NodeIdentity
beforeAll(async () => {
  ;[serverIdentity, clientIdentity] = await Promise.all([createIdentity(), createIdentity()])
})

const servers: Server[] = []
const sockets: TLSSocket[] = []
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.destroy()
  for (const server of servers.splice(0)) server.close()
})

/** A TLS 1.3 server presenting `serverIdentity` and asking for a client certificate; yields each accepted socket. */
async function tlsPair(withClientCertificate = true): Promise<{ server: TLSSocket; client: TLSSocket }> {
  const server = createServer({
    ...tlsCredentials(serverIdentity),
    requestCert: true,
    rejectUnauthorized: false,
  })
  servers.push(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  const accepted = once(server, 'secureConnection') as Promise<[TLSSocket]>
  const client = connect({
    host: '127.0.0.1',
    port,
    minVersion: 'TLSv1.3',
    rejectUnauthorized: false,
    ...(withClientCertificate ? tlsCredentials(clientIdentity) : {}),
  })
  sockets.push(client)
  await once(client, 'secureConnect')
  const [serverSocket] = await accepted
  sockets.push(serverSocket)
  for (const s of [client, serverSocket]) s.on('error', () => {})
  return { server: serverSocket, client }
}

function policy(p: Partial<AdmissionPolicy>): AdmissionPolicy {
  return { allowList: new Set(), versions: [1], ...p }
}

async function both(serverPolicy: AdmissionPolicy, clientPolicy: AdmissionPolicy, withClientCertificate = true) {
  const { server, client } = await tlsPair(withClientCertificate)
  const [inbound, outbound] = await Promise.allSettled([
    admit(server, 'inbound', serverPolicy, forever),
    admit(client, 'outbound', clientPolicy, forever),
  ])
  // A refusing side closes; the caller (the transport) does that, so do it here.
  if (inbound.status === 'rejected') server.end()
  if (outbound.status === 'rejected') client.end()
  return { inbound, outbound, server, client }
}

function codeOf(result: PromiseSettledResult<unknown>): unknown {
  return result.status === 'rejected' ? (result.reason as { code?: unknown }).code : 'admitted'
}

describe('admission', () => {
  it('admits both sides when they prove the same cluster secret', async () => {
    const { inbound, outbound } = await both(policy({ secret }), policy({ secret }))
    expect(inbound).toEqual({ status: 'fulfilled', value: { remoteNodeId: clientIdentity.nodeId, version: 1 } })
    expect(outbound).toEqual({ status: 'fulfilled', value: { remoteNodeId: serverIdentity.nodeId, version: 1 } })
  })

  it('refuses both sides with ERR_PEER_UNAUTHORIZED when the secrets differ', async () => {
    const { inbound, outbound } = await both(policy({ secret }), policy({ secret: otherSecret }))
    expect(codeOf(inbound)).toBe('ERR_PEER_UNAUTHORIZED')
    expect(codeOf(outbound)).toBe('ERR_PEER_UNAUTHORIZED')
  })

  it('refuses a client that presents no certificate, even with the right secret', async () => {
    const { inbound, outbound } = await both(policy({ secret }), policy({ secret }), false)
    expect(codeOf(inbound)).toBe('ERR_PEER_UNAUTHORIZED')
    expect(codeOf(outbound)).toBe('ERR_PEER_UNAUTHORIZED')
  })

  it('admits a peer on the allow-list without any secret', async () => {
    const { inbound, outbound } = await both(
      policy({ allowList: new Set([clientIdentity.nodeId]) }),
      policy({ allowList: new Set([serverIdentity.nodeId]) }),
    )
    expect(codeOf(inbound)).toBe('admitted')
    expect(codeOf(outbound)).toBe('admitted')
  })

  it('refuses a peer missing from the allow-list, and tells the dialler', async () => {
    const { inbound, outbound } = await both(
      policy({ allowList: new Set(['0'.repeat(64)]) }),
      policy({ allowList: new Set([serverIdentity.nodeId]) }),
    )
    expect(codeOf(inbound)).toBe('ERR_PEER_UNAUTHORIZED')
    expect(outbound).toMatchObject({ status: 'rejected', reason: { code: 'ERR_PEER_UNAUTHORIZED', message: 'the peer refused us' } })
  })

  it('refuses a listener that is not the node id the dialler expects', async () => {
    const { outbound } = await both(policy({ secret }), policy({ secret, expectedNodeId: clientIdentity.nodeId }))
    expect(codeOf(outbound)).toBe('ERR_PEER_UNAUTHORIZED')
  })

  it('picks the highest common protocol version', async () => {
    expect(highestCommonVersion([1, 2, 3], [2, 3, 4])).toBe(3)
    const { inbound, outbound } = await both(policy({ secret, versions: [1, 2, 3] }), policy({ secret, versions: [2, 3, 4] }))
    expect(inbound).toMatchObject({ value: { version: 3 } })
    expect(outbound).toMatchObject({ value: { version: 3 } })
  })

  it('fails both sides with ERR_PROTOCOL_VERSION when no version is common', async () => {
    const { inbound, outbound } = await both(policy({ secret, versions: [1] }), policy({ secret, versions: [2] }))
    expect(codeOf(inbound)).toBe('ERR_PROTOCOL_VERSION')
    expect(codeOf(outbound)).toBe('ERR_PROTOCOL_VERSION')
  })

  it('refuses a dialler that reflects the listener proof back', async () => {
    const { server, client } = await tlsPair()
    const inbound = admit(server, 'inbound', policy({ secret }), forever)
    const listenerHello = await readHello(client, forever)
    expect(listenerHello.proof).toBeDefined()
    client.write(encodeHello({ versions: [1], proof: listenerHello.proof }))
    await expect(inbound).rejects.toMatchObject({ code: 'ERR_PEER_UNAUTHORIZED' })
  })

  it('fails with ERR_PROTOCOL on bytes that are not a hello', async () => {
    const { server, client } = await tlsPair()
    const inbound = admit(server, 'inbound', policy({ secret }), forever)
    client.write('GET / HTTP/1.1\r\n\r\n')
    await expect(inbound).rejects.toMatchObject({ code: 'ERR_PROTOCOL' })
  })

  it('fails with ERR_PROTOCOL on a hello listing more versions than allowed', async () => {
    const { server, client } = await tlsPair()
    const inbound = admit(server, 'inbound', policy({ secret }), forever)
    client.write(encodeHello({ versions: Array.from({ length: 17 }, (_, i) => i + 1), proof: undefined }))
    await expect(inbound).rejects.toMatchObject({ code: 'ERR_PROTOCOL' })
  })

  it('fails with ERR_PROTOCOL on a proof of the wrong length', async () => {
    const { server, client } = await tlsPair()
    const inbound = admit(server, 'inbound', policy({ secret }), forever)
    client.write(encodeHello({ versions: [1], proof: Buffer.alloc(31) }))
    await expect(inbound).rejects.toMatchObject({ code: 'ERR_PROTOCOL' })
  })

  it('fails with the abort reason when the peer stays silent until the signal fires', async () => {
    const { server } = await tlsPair()
    const controller = new AbortController()
    const inbound = admit(server, 'inbound', policy({ secret }), controller.signal)
    const reason = new Error('handshake timeout')
    controller.abort(reason)
    await expect(inbound).rejects.toBe(reason)
  })

  it('fails with ERR_PEER_UNAUTHORIZED when the peer closes mid-hello', async () => {
    const { server, client } = await tlsPair()
    const inbound = admit(server, 'inbound', policy({ secret }), forever)
    client.end(encodeHello({ versions: [1], proof: undefined }).subarray(0, 5))
    await expect(inbound).rejects.toMatchObject({ code: 'ERR_PEER_UNAUTHORIZED' })
  })

  it('leaves the bytes that follow the verdict in the socket', async () => {
    const { server, client } = await tlsPair()
    const inbound = admit(server, 'inbound', policy({ secret }), forever)
    const hello = encodeHello({ versions: [1], proof: admissionProof(client, 'outbound', secret) })
    client.write(Buffer.concat([hello, encodeVerdict(Status.Ok, 1), Buffer.from('first application bytes')]))
    await expect(inbound).resolves.toMatchObject({ remoteNodeId: clientIdentity.nodeId })
    const rest = await readExactly(server, 'first application bytes'.length, forever)
    expect(rest.toString()).toBe('first application bytes')
  })
})
