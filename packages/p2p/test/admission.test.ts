// Admission on raw TLS 1.3 sockets, below the transport: both roles, every refusal, and
// what a stranger can learn from a handshake (nothing to test a guess against offline).
import { createHmac } from 'node:crypto'
import { once } from 'node:events'
import { connect, createServer, type Server, type TLSSocket } from 'node:tls'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createIdentity, type NodeIdentity } from '../src/index.js'
import {
  admit,
  type AdmissionPolicy,
  encodeConfirm,
  encodeHello,
  encodeVerdict,
  highestCommonVersion,
  readConfirm,
  readExactly,
  readHello,
  sessionIdOf,
  Status,
} from '../src/tcp/admission.js'
import { stretchClusterSecret } from '../src/tcp/cluster-secret.js'
import { confirmation, startCpace, transcriptOf } from '../src/tcp/cpace.js'
import { tlsCredentials } from '../src/tcp/tls.js'

const forever = new AbortController().signal
const V = [2]

let serverIdentity: NodeIdentity
let clientIdentity: NodeIdentity
let prs: Buffer
let otherPrs: Buffer
beforeAll(async () => {
  ;[serverIdentity, clientIdentity, prs, otherPrs] = await Promise.all([
    createIdentity(),
    createIdentity(),
    stretchClusterSecret(new TextEncoder().encode('the cluster secret')),
    stretchClusterSecret(new TextEncoder().encode('another secret')),
  ])
})

const servers: Server[] = []
const sockets: TLSSocket[] = []
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.destroy()
  for (const server of servers.splice(0)) server.close()
})

/** A TLS 1.3 server presenting `serverIdentity` and asking for a client certificate, and one client. */
async function tlsPair(withClientCertificate = true): Promise<{ server: TLSSocket; client: TLSSocket }> {
  const server = createServer({ ...tlsCredentials(serverIdentity), requestCert: true, rejectUnauthorized: false })
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
  return { allowList: new Set(), versions: V, ...p }
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
  return { inbound, outbound }
}

function codeOf(result: PromiseSettledResult<unknown>): unknown {
  return result.status === 'rejected' ? (result.reason as { code?: unknown }).code : 'admitted'
}

/** What a protocol-1 node sent: a hello with HMAC(secret, role | keying material). */
function legacyHello(socket: TLSSocket): Buffer {
  const proof = createHmac('sha256', 'the cluster secret').update('dcas admission: dialler').update(sessionIdOf(socket)).digest()
  return Buffer.concat([Buffer.from('dcas'), Buffer.from([0x01, 1, 0, 1, 32]), proof])
}

/** Plays the dialler by hand, with CPace on `guessPrs`: returns what the listener sent and what we computed. */
async function dialByHand(client: TLSSocket, guessPrs: Buffer, y?: bigint) {
  const sessionId = sessionIdOf(client)
  const side = startCpace(guessPrs, sessionId, y)
  const ourHello = encodeHello({ versions: V, share: side.share })
  client.write(ourHello)
  const hello = await readHello(client, forever)
  const key = side.sharedKey(hello.share!, transcriptOf(ourHello, encodeHello(hello)))!
  client.write(encodeConfirm(confirmation(key, 'outbound')))
  const tag = await readConfirm(client, forever)
  return { hello, tag, key, ourHello, sessionId }
}

describe('admission', () => {
  it('admits both sides when they hold the same cluster secret, by the secret', async () => {
    const { inbound, outbound } = await both(policy({ prs }), policy({ prs }))
    expect(inbound).toEqual({ status: 'fulfilled', value: { remoteNodeId: clientIdentity.nodeId, version: 2, by: 'secret' } })
    expect(outbound).toEqual({ status: 'fulfilled', value: { remoteNodeId: serverIdentity.nodeId, version: 2, by: 'secret' } })
  })

  it('refuses both sides with ERR_PEER_UNAUTHORIZED when the secrets differ', async () => {
    const { inbound, outbound } = await both(policy({ prs }), policy({ prs: otherPrs }))
    expect(codeOf(inbound)).toBe('ERR_PEER_UNAUTHORIZED')
    expect(codeOf(outbound)).toBe('ERR_PEER_UNAUTHORIZED')
  })

  it('refuses a client that presents no certificate, even with the right secret', async () => {
    const { inbound, outbound } = await both(policy({ prs }), policy({ prs }), false)
    expect(codeOf(inbound)).toBe('ERR_PEER_UNAUTHORIZED')
    expect(codeOf(outbound)).toBe('ERR_PEER_UNAUTHORIZED')
  })

  it('admits a peer on the allow-list without any secret', async () => {
    const { inbound, outbound } = await both(
      policy({ allowList: new Set([clientIdentity.nodeId]) }),
      policy({ allowList: new Set([serverIdentity.nodeId]) }),
    )
    expect(inbound).toMatchObject({ value: { by: 'allow-list' } })
    expect(outbound).toMatchObject({ value: { by: 'allow-list' } })
  })

  it('admits by the allow-list a peer that holds no secret while we hold one', async () => {
    const { inbound, outbound } = await both(
      policy({ prs, allowList: new Set([clientIdentity.nodeId]) }),
      policy({ allowList: new Set([serverIdentity.nodeId]) }),
    )
    expect(inbound).toMatchObject({ value: { by: 'allow-list' } })
    expect(outbound).toMatchObject({ value: { by: 'allow-list' } })
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
    const { outbound } = await both(policy({ prs }), policy({ prs, expectedNodeId: clientIdentity.nodeId }))
    expect(codeOf(outbound)).toBe('ERR_PEER_UNAUTHORIZED')
  })

  it('picks the highest common protocol version', () => {
    expect(highestCommonVersion([1, 2, 3], [2, 3, 4])).toBe(3)
    expect(highestCommonVersion([2], [3])).toBeUndefined()
  })

  it('fails both sides with ERR_PROTOCOL_VERSION when no version is common', async () => {
    const { inbound, outbound } = await both(policy({ prs, versions: [2] }), policy({ prs, versions: [3] }))
    expect(codeOf(inbound)).toBe('ERR_PROTOCOL_VERSION')
    expect(codeOf(outbound)).toBe('ERR_PROTOCOL_VERSION')
  })

  it('refuses a protocol-1 peer with ERR_PROTOCOL_VERSION that says why, without reading its proof', async () => {
    const { server, client } = await tlsPair()
    const inbound = admit(server, 'inbound', policy({ prs }), forever)
    client.write(legacyHello(client))
    await expect(inbound).rejects.toMatchObject({ code: 'ERR_PROTOCOL_VERSION', message: expect.stringMatching(/protocol 1.*offline.*upgrade/) as unknown })
    // A protocol-1 node reads our hello as one that lists version 2 and carries no proof.
    const ours = await readExactly(client, 9, forever)
    expect([...ours.subarray(4)]).toEqual([0x01, 1, 0, 2, 0])
  })

  it('refuses a dialler that reflects the listener’s share and confirmation back', async () => {
    const { server, client } = await tlsPair()
    const inbound = admit(server, 'inbound', policy({ prs }), forever)
    const hello = await readHello(client, forever)
    client.write(encodeHello(hello))
    const tag = await readConfirm(client, forever)
    client.write(encodeConfirm(tag))
    await expect(inbound).rejects.toMatchObject({ code: 'ERR_PEER_UNAUTHORIZED' })
  })

  it('fails with ERR_PROTOCOL on a share that is not a ristretto255 element, or is the identity', async () => {
    for (const share of [Buffer.alloc(32, 0xff), Buffer.alloc(32, 0)]) {
      const { server, client } = await tlsPair()
      const inbound = admit(server, 'inbound', policy({ prs }), forever)
      client.write(encodeHello({ versions: V, share }))
      await expect(inbound).rejects.toMatchObject({ code: 'ERR_PROTOCOL' })
    }
  })

  it('fails with ERR_PROTOCOL on bytes that are not a hello', async () => {
    const { server, client } = await tlsPair()
    const inbound = admit(server, 'inbound', policy({ prs }), forever)
    client.write('GET / HTTP/1.1\r\n\r\n')
    await expect(inbound).rejects.toMatchObject({ code: 'ERR_PROTOCOL' })
  })

  it('fails with ERR_PROTOCOL on a hello listing more versions than allowed', async () => {
    const { server, client } = await tlsPair()
    const inbound = admit(server, 'inbound', policy({ prs }), forever)
    client.write(encodeHello({ versions: Array.from({ length: 17 }, (_, i) => i + 1), share: undefined }))
    await expect(inbound).rejects.toMatchObject({ code: 'ERR_PROTOCOL' })
  })

  it('fails with ERR_PROTOCOL on a share or a confirmation of the wrong length', async () => {
    const first = await tlsPair()
    const inbound = admit(first.server, 'inbound', policy({ prs }), forever)
    first.client.write(encodeHello({ versions: V, share: Buffer.alloc(31) }))
    await expect(inbound).rejects.toMatchObject({ code: 'ERR_PROTOCOL' })

    const second = await tlsPair()
    const again = admit(second.server, 'inbound', policy({ prs }), forever)
    second.client.write(Buffer.concat([encodeHello({ versions: V, share: undefined }), encodeConfirm(Buffer.alloc(31))]))
    await expect(again).rejects.toMatchObject({ code: 'ERR_PROTOCOL' })
  })

  it('fails with the abort reason when the peer stays silent until the signal fires', async () => {
    const { server } = await tlsPair()
    const controller = new AbortController()
    const inbound = admit(server, 'inbound', policy({ prs }), controller.signal)
    const reason = new Error('handshake timeout')
    controller.abort(reason)
    await expect(inbound).rejects.toBe(reason)
  })

  it('fails with ERR_PEER_UNAUTHORIZED when the peer closes mid-hello', async () => {
    const { server, client } = await tlsPair()
    const inbound = admit(server, 'inbound', policy({ prs }), forever)
    client.end(encodeHello({ versions: V, share: undefined }).subarray(0, 5))
    await expect(inbound).rejects.toMatchObject({ code: 'ERR_PEER_UNAUTHORIZED' })
  })

  it('leaves the bytes that follow the verdict in the socket', async () => {
    const { server, client } = await tlsPair()
    const inbound = admit(server, 'inbound', policy({ prs }), forever)
    await dialByHand(client, prs)
    client.write(Buffer.concat([encodeVerdict(Status.Ok, 2), Buffer.from('first application bytes')]))
    await expect(inbound).resolves.toMatchObject({ remoteNodeId: clientIdentity.nodeId, by: 'secret' })
    const rest = await readExactly(server, 'first application bytes'.length, forever)
    expect(rest.toString()).toBe('first application bytes')
  })
})

describe('admission against a stranger', () => {
  it('gives a stranger that offers no share no confirmation at all', async () => {
    const { server, client } = await tlsPair()
    const inbound = admit(server, 'inbound', policy({ prs }), forever)
    client.write(encodeHello({ versions: V, share: undefined }))
    const hello = await readHello(client, forever)
    expect(hello.share).toHaveLength(32)
    client.write(encodeConfirm(undefined))
    expect(await readConfirm(client, forever)).toBeUndefined()
    await expect(inbound).rejects.toMatchObject({ code: 'ERR_PEER_UNAUTHORIZED' })
  })

  it('sends no confirmation before it holds the other side’s share', async () => {
    const { server, client } = await tlsPair()
    const inbound = admit(server, 'inbound', policy({ prs }), forever)
    const hello = await readHello(client, forever)
    expect(hello.share).toHaveLength(32)
    // Nothing else comes while we keep our share: the listener waits for it.
    client.end()
    await expect(inbound).rejects.toMatchObject({ code: 'ERR_PEER_UNAUTHORIZED' })
    const after = await readExactly(client, 1, forever).catch((err: { code?: string }) => err.code)
    expect(after).toBe('ERR_PEER_UNAUTHORIZED') // the stream ended: not one byte of confirmation was sent
  })

  it('lets a recorded handshake confirm only the one guess the stranger committed to', async () => {
    const dictionary = ['password', 'letmein', 'another secret', 'the cluster secret', 'hunter2']
    const stretched = await Promise.all(dictionary.map((w) => stretchClusterSecret(new TextEncoder().encode(w))))
    const { server, client } = await tlsPair()
    const inbound = admit(server, 'inbound', policy({ prs }), forever)
    const y = 123456789n
    const record = await dialByHand(client, otherPrs, y) // the stranger guesses 'another secret'
    client.end()
    await expect(inbound).rejects.toMatchObject({ code: 'ERR_PEER_UNAUTHORIZED' })
    expect(record.tag).toHaveLength(32)
    // Offline, with everything it saw and its own scalar, try every word: none confirms, not even the real one,
    // because the listener's key depends on the share the stranger sent, made from its one guess.
    const transcript = transcriptOf(record.ourHello, encodeHello(record.hello))
    for (const [i, word] of stretched.entries()) {
      const key = startCpace(word, record.sessionId, y).sharedKey(record.hello.share!, transcript)!
      expect(confirmation(key, 'inbound').equals(record.tag!), dictionary[i]).toBe(false)
    }
  })

  it('confirms to a dialler that guessed right (the check above is not vacuous)', async () => {
    const { server, client } = await tlsPair()
    const inbound = admit(server, 'inbound', policy({ prs }), forever)
    const record = await dialByHand(client, prs)
    client.write(encodeVerdict(Status.Ok, 2))
    await expect(inbound).resolves.toMatchObject({ by: 'secret' })
    expect(confirmation(record.key, 'inbound').equals(record.tag!)).toBe(true)
  })
})
