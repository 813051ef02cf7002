// Two nodes on one machine: each loads (or creates) its identity, they share a
// cluster secret, one listens, the other dials and sends a message on a stream.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadOrCreateIdentity, tcpTransport } from '@dcas/p2p'

const dataDir = await mkdtemp(join(tmpdir(), 'dcas-p2p-example-'))
const clusterSecret = 'correct horse battery staple'
const alice = tcpTransport({ identity: await loadOrCreateIdentity(join(dataDir, 'alice')), clusterSecret })
const bob = tcpTransport({ identity: await loadOrCreateIdentity(join(dataDir, 'bob')), clusterSecret })

// Bob answers each stream with what he read, upper-cased.
const address = await bob.listen('127.0.0.1:0', (connection) => {
  void (async () => {
    for await (const stream of connection.incoming) {
      let text = ''
      for await (const chunk of stream) text += Buffer.from(chunk).toString()
      await stream.write(Buffer.from(text.toUpperCase()))
      await stream.closeWrite()
    }
  })()
})

const connection = await alice.dial(address)
const stream = await connection.openStream()
await stream.write(Buffer.from('hello, bob'))
await stream.closeWrite()
let answer = ''
for await (const chunk of stream) answer += Buffer.from(chunk).toString()
console.log(`${connection.remoteNodeId === bob.nodeId ? 'bob' : 'someone else'} answered: ${answer}`)

await alice.close()
await bob.close()
await rm(dataDir, { recursive: true, force: true })
