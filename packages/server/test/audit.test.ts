// Proof of storage: scrub challenges the copies peers acknowledged; one whose bytes are gone counts as
// lost and is replicated again.
import { chmod, readFile, rm, writeFile } from 'node:fs/promises'
import { basename } from 'node:path'
import { memoryTransport } from '@dcas/p2p'
import { describe, expect, it } from 'vitest'
import { Exchange, type Header } from '../src/wire.js'
import { bytes, replicaFiles, sha256, useCluster } from './helpers.js'

const t = useCluster()

describe('audits', () => {
  it('find a copy whose bytes a peer lost without saying so, and bring it back', async () => {
    const a = await t.cluster.add('a')
    const c = await t.cluster.add('c', ['a'])
    await c.waitForPeers(1)
    await c.store('k', bytes(3 * 64 * 1024))
    const files = await replicaFiles(t.cluster.roots[0]!, c.nodeId)
    // A loses its blobs behind its own back: its tables still say it holds them.
    await Promise.all(files.map((f) => rm(f)))
    const result = await c.scrub({ audit: 10 })
    expect(result.audited).toBe(1)
    expect(result.lostCopies).toEqual([expect.objectContaining({ key: 'k', nodeId: a.nodeId })])
    expect((await c.stat('k')).replicas).toEqual([])
    await c.waitForSync()
    expect((await c.stat('k')).replicas).toEqual([a.nodeId])
    expect(await replicaFiles(t.cluster.roots[0]!, c.nodeId)).toHaveLength(files.length)
    expect((await c.scrub({ audit: 10 })).lostCopies).toEqual([])
  })

  it('replace every damaged blob of a copy that failed, not only the one challenged', async () => {
    const a = await t.cluster.add('a')
    const c = await t.cluster.add('c', ['a'])
    await c.waitForPeers(1)
    await c.store('k', bytes(3 * 64 * 1024))
    const files = await replicaFiles(t.cluster.roots[0]!, c.nodeId)
    expect(files.length).toBeGreaterThan(2)
    // Every blob of A's copy rots; its tables still say it holds them.
    for (const f of files) {
      await chmod(f, 0o600)
      const data = await readFile(f)
      data[0]! ^= 0xff
      await writeFile(f, data)
    }
    expect((await c.scrub({ audit: 10 })).lostCopies).toEqual([expect.objectContaining({ key: 'k', nodeId: a.nodeId })])
    await c.waitForSync()
    expect((await c.stat('k')).replicas).toEqual([a.nodeId])
    const now = await replicaFiles(t.cluster.roots[0]!, c.nodeId)
    expect(now.map((f) => basename(f)).sort()).toEqual(files.map((f) => basename(f)).sort())
    for (const f of now) expect(sha256(await readFile(f))).toBe(basename(f))
  })

  it('catch a peer that acknowledges blobs it never keeps', async () => {
    const cheat = memoryTransport({ network: t.cluster.network, clusterSecret: 'test-cluster-secret' })
    const answer = async (ex: Exchange, h: Header): Promise<void> => {
      if (h.op === 'blob.put') {
        await ex.send({ ok: true, have: false })
        const size = (await ex.requireHeader()).size as number
        for await (const _ of ex.body(size)) void _
        return ex.send({ ok: true })
      }
      if (h.op === 'ref.list') return ex.send({ ok: true, entries: [] })
      // A proof made up without the bytes.
      if (h.op === 'blob.prove') return ex.send({ ok: true, proof: 'f'.repeat(64) })
      return ex.send({ ok: true, missing: [] })
    }
    await cheat.listen('cheat:1', (conn) => {
      void (async () => {
        for await (const stream of conn.incoming) {
          const ex = new Exchange(stream)
          void ex.readHeader().then(async (h) => {
            if (h !== undefined) await answer(ex, h)
            await ex.end()
          }).catch(() => {})
        }
      })()
    })
    try {
      const c = await t.cluster.add('c', ['cheat'])
      await c.waitForPeers(1)
      expect((await c.store('k', bytes(100_000))).replicas).toEqual([cheat.nodeId])
      const result = await c.scrub({ audit: 5 })
      expect(result.lostCopies).toEqual([expect.objectContaining({ nodeId: cheat.nodeId, reason: 'its proof of the blob is wrong' })])
      expect((await c.stat('k')).replicas).toEqual([])
    } finally {
      await cheat.close({ signal: AbortSignal.timeout(1000) }).catch(() => {})
    }
  })
})
