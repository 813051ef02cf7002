// Recovery from identity/ alone, and catch-up when peers know versions or deletes this node lost.
import { cp, readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { Server } from '../src/index.js'
import { bytes, readAll, replicaFiles, sha256, useCluster } from './helpers.js'

const t = useCluster()

/** C (the third root) loses everything but identity/ and comes back as `name`, dialling A and B. */
async function disaster(c: Server, name: string): Promise<Server> {
  await c.close()
  const fresh = join(t.dir, name)
  await cp(join(t.cluster.roots[2]!, 'identity'), join(fresh, 'identity'), { recursive: true })
  return t.cluster.add(name, ['a', 'b'], { root: fresh, nodeId: c.nodeId })
}

describe('recovery from identity/', () => {
  it('does not bring back a key deleted while one peer was away', async () => {
    const [, b, c] = await t.cluster.triangle()
    await c.store('gone', 'deleted while B was away')
    await c.store('kept', 'still here')
    await b.close()
    await c.delete('gone')
    const b2 = await t.cluster.add('b2', ['a'], { root: t.cluster.roots[1]!, listen: 'b:1' })
    await b2.waitForPeers(1)
    const d = await disaster(c, 'd')
    await d.waitForPeers(2)
    await d.waitForSync()
    expect((await d.list()).map((e) => e.key)).toEqual(['kept'])
    // and the stale peer was told: it holds only what "kept" needs (one chunk and a manifest)
    await b2.waitForSync()
    await d.waitForSync()
    expect(await replicaFiles(t.cluster.roots[1]!, d.nodeId)).toHaveLength(2)
  })

  it('stores a key deleted before the disaster again, on every peer', async () => {
    const [a, b, c] = await t.cluster.triangle()
    await c.store('gone', 'old')
    await c.delete('gone')
    const d = await disaster(c, 'd')
    await d.waitForPeers(2)
    await d.waitForSync()
    const result = await d.store('gone', 'new content')
    expect(result.replicas.sort()).toEqual([a.nodeId, b.nodeId].sort())
    expect((await readAll(d, 'gone')).toString()).toBe('new content')
  })

  it('keeps a store made before catch-up over the older versions peers hold', async () => {
    const [, , c] = await t.cluster.triangle()
    for (let i = 0; i < 3; i++) await c.store('k', `old ${i}`)
    await c.close()
    const fresh = join(t.dir, 'd')
    await cp(join(t.cluster.roots[2]!, 'identity'), join(fresh, 'identity'), { recursive: true })
    // no peers yet: the store resolves locally, as version 1
    const d = await t.cluster.add('d', [], { root: fresh, nodeId: c.nodeId, writeQuorum: 0 })
    expect((await d.store('k', 'NEWEST')).version).toBe(1)
    await d.close()
    const d2 = await t.cluster.add('d2', ['a', 'b'], { root: fresh, nodeId: c.nodeId })
    await d2.waitForPeers(2)
    await d2.waitForSync()
    expect((await readAll(d2, 'k')).toString()).toBe('NEWEST')
    expect((await d2.stat('k')).version).toBeGreaterThan(3)
  })

  it('tells a peer that never held a key of its delete, so a new store after a disaster goes above it', async () => {
    const [a, b, c] = await t.cluster.triangle()
    await b.close()
    await c.store('k', 'v1')
    await c.store('k', 'v2')
    expect((await c.delete('k')).pending).toEqual([b.nodeId])
    const told = new Promise<void>((resolve) => c.on('synced', ({ nodeId }) => nodeId === b.nodeId && resolve()))
    await t.cluster.add('b2', ['a', 'c'], { root: t.cluster.roots[1]!, listen: 'b:1' })
    await told
    await a.close()
    const d = await disaster(c, 'd')
    await d.waitForPeers(1)
    await d.waitForSync()
    expect((await d.store('k', 'v3')).version).toBeGreaterThan(2)
  })

  it('deletes a key that only the peers still know', async () => {
    const [a, b, c] = await t.cluster.triangle()
    await c.store('k', 'v')
    const d = await disaster(c, 'd')
    await d.waitForPeers(2)
    const result = await d.delete('k')
    expect(result.acknowledged.sort()).toEqual([a.nodeId, b.nodeId].sort())
    expect(await d.has('k')).toBe(false)
  })
})

describe('catch-up', () => {
  it('sends a peer the replicas it lost from disk, once it restarts', async () => {
    const [a, , c] = await t.cluster.triangle()
    await c.store('k', bytes(150_000))
    const before = (await replicaFiles(t.cluster.roots[0]!, c.nodeId)).length
    await a.close()
    await rm(join(t.cluster.roots[0]!, 'replicas', c.nodeId, 'blobs'), { recursive: true, force: true })
    const a2 = await t.cluster.add('a2', [], { root: t.cluster.roots[0]!, listen: 'a:1' })
    await a2.waitForPeers(2)
    await c.waitForSync()
    expect((await replicaFiles(t.cluster.roots[0]!, c.nodeId)).length).toBe(before)
  })

  it('brings a peer every other key and delete when one key cannot be sent', async () => {
    const [a, b, c] = await t.cluster.triangle()
    await c.store('gone', bytes(1000))
    await b.close()
    await c.delete('gone')
    const bad = bytes(1000)
    await c.store('bad', bad)
    await c.store('x', bytes(1000))
    // "bad" is lost on C and on A, the only other holder: nobody can send it to B
    const id = sha256(bad)
    await rm(join(t.cluster.roots[2]!, 'blobs', id.slice(0, 2), id.slice(2, 4), id))
    await a.close()
    await rm(join(t.cluster.roots[0]!, 'replicas', c.nodeId), { recursive: true })
    await t.cluster.add('a2', [], { root: t.cluster.roots[0]!, listen: 'a:1' })
    const b2 = await t.cluster.add('b2', ['a'], { root: t.cluster.roots[1]!, listen: 'b:1' })
    await c.waitForPeers(2)
    await c.waitForSync()
    expect((await c.stat('x')).replicas).toContain(b2.nodeId)
    // "gone" was freed on B: only "x"'s chunk and manifest (and nothing of "bad") are left
    const held = await readdir(join(t.cluster.roots[1]!, 'replicas', c.nodeId, 'blobs'), { recursive: true })
    expect(held.filter((f) => /^[0-9a-f]{64}$/.test(f.split('/').pop()!))).toHaveLength(2)
  })
})
