// What other owners may hold on a node: bytes and refs per owner, how many owners, and nothing made
// on disk for an owner that has not stored anything.
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { memoryTransport } from '@dcas/p2p'
import { describe, expect, it } from 'vitest'
import { Exchange } from '../src/wire.js'
import type { BehindEvent } from '../src/index.js'
import { bytes, codeOf, readAll, replicaFiles, useCluster } from './helpers.js'

const t = useCluster()

describe('holder limits', () => {
  it("refuse an owner's blobs past its byte quota, with ERR_QUOTA, and keep what it stored before", async () => {
    const a = await t.cluster.add('a', [], { holderLimits: { bytesPerOwner: 200_000 } })
    const c = await t.cluster.add('c', ['a'])
    await c.waitForPeers(1)
    const first = bytes(150_000)
    expect((await c.store('first', first)).replicas).toEqual([a.nodeId])
    const err = await c.store('second', bytes(300_000)).catch((e: { code?: string; message: string }) => e)
    expect(err).toMatchObject({ code: 'ERR_QUORUM' })
    expect(String((err as Error).message)).toContain('ERR_QUOTA')
    // What A holds for C: the first object, and at most one blob beyond the quota.
    const held = await replicaFiles(t.cluster.roots[0]!, c.nodeId)
    expect(held.length).toBeLessThanOrEqual(4 + 1)
    expect((await readAll(c, 'first')).equals(first)).toBe(true)
  })

  it('refuse blobs with ERR_DISK_FULL while they keep their free-space reserve, which the owner tries again later', async () => {
    const a = await t.cluster.add('a', [], { holderLimits: { reserveBytes: Number.MAX_SAFE_INTEGER } })
    const c = await t.cluster.add('c', ['a'])
    await c.waitForPeers(1)
    const behind = new Promise<BehindEvent>((resolve) => c.once('peer:behind', resolve))
    const err = await c.store('k', bytes(10_000)).catch((e: { code?: string; message: string }) => e)
    expect(err).toMatchObject({ code: 'ERR_QUORUM' })
    expect(String((err as Error).message)).toContain('ERR_DISK_FULL')
    // Unlike a quota, a full disk may pass: the late replication that failed is scheduled again.
    const event = await behind
    expect(event).toMatchObject({ nodeId: a.nodeId })
    expect(event.message).toContain('ERR_DISK_FULL')
    expect(await replicaFiles(t.cluster.roots[0]!, c.nodeId)).toEqual([])
  })

  it('refuse a new owner once they hold replicas for as many owners as allowed', async () => {
    const a = await t.cluster.add('a', [], { holderLimits: { owners: 1 } })
    const b = await t.cluster.add('b', ['a'])
    // C waits for every placed holder: B may hold its copy, A must refuse its share.
    const c = await t.cluster.add('c', ['a'], { writeQuorum: 'all' })
    await Promise.all([b.waitForPeers(1), c.waitForPeers(1)])
    expect((await b.store('k', 'first owner')).replicas).toContain(a.nodeId)
    expect(await codeOf(c.store('k', 'second owner'))).toBe('ERR_QUORUM')
    expect(await replicaFiles(t.cluster.roots[0]!, c.nodeId)).toEqual([])
  })

  it('refuse refs past the quota of refs per owner', async () => {
    const a = await t.cluster.add('a', [], { holderLimits: { refsPerOwner: 2 } })
    const c = await t.cluster.add('c', ['a'])
    await c.waitForPeers(1)
    await c.store('k1', 'one')
    await c.store('k2', 'two')
    expect(await codeOf(c.store('k3', 'three'))).toBe('ERR_QUORUM')
    // A new version of a key it keeps is no new ref.
    expect((await c.store('k1', 'one again')).replicas).toEqual([a.nodeId])
  })

  it('make nothing on disk for a peer that only asks', async () => {
    await t.cluster.add('a')
    const evil = memoryTransport({ network: t.cluster.network, clusterSecret: 'test-cluster-secret' })
    const conn = await evil.dial('a:1')
    try {
      for (const header of [{ v: 1, op: 'ref.list', limit: 10 }, { v: 1, op: 'blob.has', cipherIds: ['0'.repeat(64)] }, { v: 1, op: 'blob.get', cipherId: '1'.repeat(64) }]) {
        const ex = new Exchange(await conn.openStream())
        await ex.send(header)
        await ex.end()
        expect(await ex.readHeader()).toBeDefined()
      }
      expect(await readdir(join(t.cluster.roots[0]!, 'replicas'))).toEqual([])
    } finally {
      await evil.close({ signal: AbortSignal.timeout(1000) }).catch(() => {})
    }
  })
})
