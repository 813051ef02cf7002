// Two nodes on an in-memory network: Bob answers each stream upper-cased.
import { createMemoryNetwork, memoryTransport, type Stream } from '@dcas/p2p'

async function readText(stream: Stream): Promise<string> {
  const decoder = new TextDecoder()
  let text = ''
  for await (const chunk of stream) text += decoder.decode(chunk, { stream: true })
  return text + decoder.decode()
}

const network = createMemoryNetwork()
const alice = memoryTransport({ network, clusterSecret: 'our cluster secret' })
const bob = memoryTransport({ network, clusterSecret: 'our cluster secret' })

const address = await bob.listen('bob:0', (connection) => {
  void (async () => {
    for await (const stream of connection.incoming) {
      const request = await readText(stream)
      await stream.write(new TextEncoder().encode(request.toUpperCase()))
      await stream.closeWrite()
    }
  })()
})

const connection = await alice.dial(address)
console.log(`alice reached bob (${connection.remoteNodeId === bob.nodeId ? 'node id checked' : 'wrong node'}) at ${address}`)

const stream = await connection.openStream()
await stream.write(new TextEncoder().encode('hello, bob'))
await stream.closeWrite()
console.log(`bob answered: ${await readText(stream)}`)

// A node without the cluster secret is refused.
const mallory = memoryTransport({ network, clusterSecret: 'a guess' })
await mallory.dial(address).catch((err: { code?: string }) => console.log(`mallory was refused: ${err.code}`))

await alice.close()
await bob.close()
