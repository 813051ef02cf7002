// Five dcas nodes on 127.0.0.1 in three zones, each told only the first one's address: two copies
// of each object, on peers in distinct zones. A node is lost for good and repair makes its copies
// again; a node joins and takes its share; a node is drained before it leaves.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer, type Server, type ServerOptions } from '@dcas/server'

const dir = await mkdtemp(join(tmpdir(), 'dcas-placement-'))
const common: Partial<ServerOptions> = { clusterSecret: 'a secret every node of the cluster shares', replicas: 2, lostAfter: 2_000 }
const nodes: Server[] = []
async function start(name: string, zone: string): Promise<Server> {
  const node = createServer({ ...common, root: join(dir, name), zone, bootstrap: nodes.length === 0 ? [] : [nodes[0]!.address] })
  await node.start()
  nodes.push(node)
  return node
}
const zones = ['east', 'east', 'west', 'west', 'north']
for (const [i, zone] of zones.entries()) await start(`n${i}`, zone)
const owner = nodes[4]!
while (owner.peers().filter((p) => p.connected).length < 4) await new Promise((resolve) => owner.once('peer:connect', resolve))

for (let i = 0; i < 20; i++) await owner.store(`item_${i}`, `content ${i}`)
const zoneOf = new Map(owner.peers().map((p) => [p.nodeId, p.zone]))
const spread = await Promise.all(Array.from({ length: 20 }, async (_, i) => new Set((await owner.stat(`item_${i}`)).replicas.map((id) => zoneOf.get(id))).size))
console.log(`20 objects, each on 2 peers in ${Math.min(...spread)} zones: ${JSON.stringify((await owner.placementStatus()).objectsByCopies)}`)

// n3 is lost for good: after lostAfter, the owner copies what it held to the next nodes in placement order.
const lost = new Promise((resolve) => owner.once('node:lost', resolve))
await nodes[3]!.close()
await lost
await owner.waitForPlacement()
console.log(`n3 lost, copies made again: ${JSON.stringify((await owner.placementStatus()).objectsByCopies)}`)

// n5 joins: only the objects now placed on it move there, copied before their old copies are released.
const joined = new Promise((resolve) => owner.once('node:joined', resolve))
await start('n5', 'west')
await joined
await owner.waitForPlacement()
console.log(`n5 joined, placement settled: ${(await owner.placementStatus()).repair.settled}`)

// n1 leaves for good: drain moves what it holds away first.
await nodes[1]!.drain()
await owner.waitForPlacement()
console.log(`n1 drained, its replicas moved: ${JSON.stringify((await owner.placementStatus()).objectsByCopies)}`)

await Promise.all(nodes.map((n) => n.close()))
await rm(dir, { recursive: true, force: true })
