// Three dcas nodes on 127.0.0.1: b dials a, c dials a and b. c stores, reads, deletes.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer } from '@dcas/server'

const dir = await mkdtemp(join(tmpdir(), 'dcas-example-'))
const clusterSecret = 'a secret every node of the cluster shares'

const a = createServer({ root: join(dir, 'a'), clusterSecret })
await a.start()
const b = createServer({ root: join(dir, 'b'), clusterSecret, bootstrap: [a.address] })
await b.start()
const c = createServer({ root: join(dir, 'c'), clusterSecret, bootstrap: [a.address, b.address] })
await c.start()
await c.waitForPeers(2)

const { size, replicas } = await c.store('item_0', 'big conten0')
console.log(`stored ${size} bytes, acknowledged by ${replicas.length} peers`)

let text = ''
for await (const chunk of c.read('item_0')) text += String(chunk)
console.log(`read back: ${text}`)

const { acknowledged } = await c.delete('item_0')
console.log(`deleted on ${acknowledged.length} peers; still there: ${await c.has('item_0')}`)

await Promise.all([a.close(), b.close(), c.close()])
await rm(dir, { recursive: true, force: true })
