// Minimal reproduction (found by the fault suite's "hostile catch-up answer: fake-tombstones" case):
// one peer admitted with the cluster secret answers C's catch-up `ref.list` with a tombstone, at a
// higher version and without `writtenAt`, for each of C's refs it holds. C deletes its own live
// objects, locally and on its honest peer A.
//
//   node --import tsx faults/repro/forged-tombstone.ts           (after `pnpm build`)
//   node --import tsx faults/repro/forged-tombstone.ts --dated   (tombstones claim `writtenAt` = now)
//
// Exits 0 if C keeps its objects, 1 if it lost them (the bug).
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnNode, type NodeHandle } from '@dcas/server/testing'
import { replicaFiles } from '../src/disk.js'
import { HostilePeer } from '../src/hostile.js'

const dir = await mkdtemp(join(tmpdir(), 'dcas-forged-tombstone-'))
const secret = 'forged-tombstone'
const nodes: NodeHandle[] = []
const h = await HostilePeer.create()
let lost = 0
try {
  const c = await spawnNode({ root: join(dir, 'c'), clusterSecret: secret, bootstrap: [], chunkSize: 64 * 1024, requestTimeout: 2_000 }, { output: 'ignore' })
  nodes.push(c)
  await h.connect(c.address, secret)
  const a = await spawnNode({ root: join(dir, 'a'), clusterSecret: secret, bootstrap: [c.address], chunkSize: 64 * 1024, requestTimeout: 2_000 }, { output: 'ignore' })
  nodes.push(a)
  await c.waitForPeers(2, 30_000)
  await c.waitForSync()
  const keys = ['k0', 'k1', 'k2']
  for (const key of keys) await c.store(key, 100 * 1024, key)
  await c.waitForSync()
  const heldByA = (await replicaFiles(join(dir, 'a'), c.nodeId)).length
  console.log(`C stored ${keys.length} objects; H (hostile) holds ${h.refs.size} of C's refs; honest A holds ${heldByA} replica blobs of C`)

  // H reconnects and lies in catch-up: every ref it holds is "deleted" at a higher version.
  await h.disconnect()
  h.listMode = process.argv.includes('--dated') ? 'fake-tombstones-dated' : 'fake-tombstones'
  await h.connect(c.address, secret)
  await c.waitForPeers(2, 30_000)
  await c.waitForSync()

  console.log(`honest A holds ${(await replicaFiles(join(dir, 'a'), c.nodeId)).length} replica blobs of C now`)
  const listed = new Set((await c.list()).map((e) => e.key))
  for (const key of keys) {
    const readable = await c.read(key).then(
      () => true,
      () => false,
    )
    if (!listed.has(key) || !readable) lost++
    console.log(`${key}: listed ${listed.has(key)}, readable ${readable}`)
  }
} finally {
  await h.disconnect().catch(() => {})
  await Promise.all(nodes.map((n) => n.close()))
  await rm(dir, { recursive: true, force: true })
}
console.log(lost === 0 ? 'C kept every object: not reproduced' : `BUG: C lost ${lost} live object(s) to tombstones forged by one admitted peer`)
process.exit(lost === 0 ? 0 : 1)
