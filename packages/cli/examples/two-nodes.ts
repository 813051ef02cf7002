// Two dcas nodes run from a program, as `dcas init` and `dcas serve` would run them, and a
// client that finds node A through its api.json, as `dcas put/get/ls/rm --root DIR` do.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect, initNode, startDaemon } from '@dcas/cli'

const dir = await mkdtemp(join(tmpdir(), 'dcas-cli-example-'))
const local = { listen: '127.0.0.1:0', http: '127.0.0.1:0' }
const clusterSecret = 'a secret every node of the cluster shares'
await initNode({ root: join(dir, 'a'), clusterSecret, ...local })
await initNode({ root: join(dir, 'b'), clusterSecret, ...local })
const a = await startDaemon({ root: join(dir, 'a') })
const b = await startDaemon({ root: join(dir, 'b'), peers: [a.address] })
await Promise.all([a.server.waitForPeers(1), b.server.waitForPeers(1)])

const client = await connect({ root: join(dir, 'a') })
const { size, replicas } = await client.put('notes/hello.txt', 'hello, dcas')
console.log(`stored ${size} bytes on A, acknowledged by ${replicas.length} peer`)

let text = ''
for await (const chunk of (await client.get('notes/hello.txt')).body) text += Buffer.from(chunk).toString()
console.log(`read back: ${text}`)
for await (const entry of client.listAll({ prefix: 'notes/' })) console.log(`listed: ${entry.key} (${entry.size} bytes)`)

await a.server.waitForPlacement() // every object on its placed holders, checked and counted
const status = await client.status()
console.log(`A sees ${status.peers.filter((p) => p.connected).length} connected peer; ${status.objects.replicated} of ${status.objects.objects} objects with all their copies`)
console.log(`placement: ${status.replication.target} copy per object, settled: ${status.replication.repair.settled}`)

const { acknowledged } = await client.delete('notes/hello.txt')
console.log(`deleted on ${acknowledged.length} peer; ${(await client.list()).objects.length} objects left`)

await Promise.all([a.close(), b.close()])
await rm(dir, { recursive: true, force: true })
