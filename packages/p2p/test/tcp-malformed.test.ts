// A peer that passes admission and then sends a malformed frame loses that one
// connection; the listener and every other connection carry on.
import { once } from 'node:events'
import { connect, type TLSSocket } from 'node:tls'
import { afterEach, describe, expect, it } from 'vitest'
import { createIdentity } from '../src/index.js'
import { admit } from '../src/tcp/admission.js'
import { stretchClusterSecret } from '../src/tcp/cluster-secret.js'
import { tlsCredentials } from '../src/tcp/tls.js'
import { echo, listener, roundTrip, transport } from './tcp-helpers.js'

const secret = 'malformed frame test secret'
const sockets: TLSSocket[] = []
afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy()
})

/** A hand-driven dialler: TLS and admission done right, then raw bytes of our choosing. */
async function admittedSocket(address: string): Promise<TLSSocket> {
  const [host, port] = address.split(':') as [string, string]
  const socket = connect({ host, port: Number(port), rejectUnauthorized: false, ...tlsCredentials(await createIdentity()) })
  socket.on('error', () => {})
  sockets.push(socket)
  await once(socket, 'secureConnect')
  const policy = { prs: await stretchClusterSecret(new TextEncoder().encode(secret)), allowList: new Set<string>(), versions: [2] }
  await admit(socket, 'outbound', policy, new AbortController().signal)
  return socket
}

// A yamux header with version 0xff: no valid frame starts like this.
const badVersion = Buffer.from([0xff, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4, 1, 2, 3, 4])

describe('a malformed frame over TCP', () => {
  it('closes only its own connection, with ERR_PROTOCOL', async () => {
    const l = await listener({ clusterSecret: secret })
    const good = await (await transport({ clusterSecret: secret })).dial(l.address)
    const goodInbound = await l.nextConnection()
    echo(goodInbound)

    const bad = await admittedSocket(l.address)
    const badInbound = await l.nextConnection()
    bad.resume()
    bad.write(badVersion)
    expect(await badInbound.closed).toMatchObject({ code: 'ERR_PROTOCOL' })
    await once(bad, 'close')

    expect(goodInbound.open).toBe(true)
    expect((await roundTrip(good, Buffer.from('still here'))).toString()).toBe('still here')
  })

  it('leaves the listener accepting new connections', async () => {
    const l = await listener({ clusterSecret: secret })
    const bad = await admittedSocket(l.address)
    const badInbound = await l.nextConnection()
    bad.resume()
    bad.write(badVersion)
    await badInbound.closed

    const later = await (await transport({ clusterSecret: secret })).dial(l.address)
    echo(await l.nextConnection())
    expect((await roundTrip(later, Buffer.from('new connection'))).toString()).toBe('new connection')
  })
})
