// The transport compliance suite, run against the TCP transport over 127.0.0.1.
import { once } from 'node:events'
import { createServer } from 'node:net'
import { createIdentity, type NodeIdentity, tcpTransport } from '../src/index.js'
import { transportTests } from '../src/testing/index.js'

/** A port that was free a moment ago: nothing listens on it. */
async function closedPort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

const identities = new Map<string, NodeIdentity>()

transportTests({
  name: 'tcp',
  async createTransport({ nodeId, clusterSecret, allowList }) {
    const identity = nodeId === undefined ? await createIdentity() : identities.get(nodeId)
    if (identity === undefined) throw new Error(`no identity was made for ${nodeId}`)
    return tcpTransport({ identity, ...(clusterSecret === undefined ? {} : { clusterSecret }), ...(allowList === undefined ? {} : { allowList }) })
  },
  async createNodeId() {
    const identity = await createIdentity()
    identities.set(identity.nodeId, identity)
    return identity.nodeId
  },
  listenAddress: '127.0.0.1:0',
  unreachableAddress: `127.0.0.1:${await closedPort()}`,
  cleanup: () => identities.clear(),
})
