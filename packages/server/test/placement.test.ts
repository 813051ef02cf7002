// The placement seam: a policy other than "every known peer" decides where stores, reads after
// loss, deletes and catch-up go, with no other change.
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { HealedEvent, PlacementPolicy, Server } from '../src/index.js'
import { bytes, readAll, replicaFiles, useCluster } from './helpers.js'

const t = useCluster()
const B = 'b'.repeat(64)
/** Every ref on B alone, whatever else is there. */
const onlyB: PlacementPolicy = { holders: (_refId, members) => members.filter((m) => m.nodeId === B).map((m) => m.nodeId) }

/** A and B, and C (dialling both) whose refs go where `onlyB` says. */
async function cluster(): Promise<[Server, Server, Server]> {
  const a = await t.cluster.add('a', [], { placement: onlyB })
  const b = await t.cluster.add('b', ['a'], { nodeId: B, placement: onlyB })
  const c = await t.cluster.add('c', ['a', 'b'], { placement: onlyB })
  await Promise.all([a.waitForPeers(2), b.waitForPeers(2), c.waitForPeers(2)])
  await Promise.all([a.waitForSync(), b.waitForSync(), c.waitForSync()])
  return [a, b, c]
}

describe('a placement policy other than every peer', () => {
  it('sends a store only to the peers it places the ref on', async () => {
    const [a, b, c] = await cluster()
    const result = await c.store('k', bytes(150_000))
    expect(result.replicas).toEqual([b.nodeId])
    await c.waitForSync()
    expect(await replicaFiles(t.cluster.roots[0]!, c.nodeId)).toEqual([])
    expect((await replicaFiles(t.cluster.roots[1]!, c.nodeId)).length).toBeGreaterThan(0)
    expect(a.nodeId).not.toBe(b.nodeId)
  })

  it('reads after local loss from the peer it placed the ref on', async () => {
    const [, b, c] = await cluster()
    const data = bytes(150_000)
    await c.store('k', data)
    await rm(join(t.cluster.roots[2]!, 'blobs'), { recursive: true })
    const healed: HealedEvent[] = []
    c.on('healed', (e) => healed.push(e))
    expect((await readAll(c, 'k')).equals(data)).toBe(true)
    expect(healed.length).toBeGreaterThan(0)
    expect(new Set(healed.map((e) => e.from))).toEqual(new Set([b.nodeId]))
  })

  it('waits for and tells only the placed peer of a delete', async () => {
    const [, b, c] = await cluster()
    await c.store('k', bytes(10_000))
    expect(await c.delete('k')).toEqual({ acknowledged: [b.nodeId], pending: [] })
  })

  it('catches up a placed peer that was away, and no other', async () => {
    const [a, , c] = await cluster()
    const bRoot = t.cluster.roots[1]!
    await t.cluster.servers[1]!.close()
    await c.store('while-away', bytes(100_000), {})
    await a.close()
    // B comes back: catch-up brings it the ref; A, back too, gets nothing of C's.
    const b2 = await t.cluster.add('b', ['c'], { nodeId: B, root: bRoot, placement: onlyB })
    const a2 = await t.cluster.add('a', ['c'], { root: t.cluster.roots[0]!, placement: onlyB })
    await Promise.all([b2.waitForPeers(1), a2.waitForPeers(1), c.waitForPeers(2)])
    await c.waitForSync()
    expect((await c.stat('while-away')).replicas).toEqual([B])
    expect(await replicaFiles(t.cluster.roots[0]!, c.nodeId)).toEqual([])
  })
})
