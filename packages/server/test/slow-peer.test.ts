// A slow peer: a store does not wait on a peer the quorum can do without, background work toward
// a slow peer holds no key lock, so the owner's own writes go on, and a peer that trickles a blob
// is left by the request's timeout.
import { createHash } from 'node:crypto'
import { rm } from 'node:fs/promises'
import { memoryTransport } from '@dcas/p2p'
import { describe, expect, it } from 'vitest'
import { Exchange, type Header } from '../src/wire.js'
import { heapAfterGc } from '@dcas/store/testing'
import { bytes, codeOf, ownBlobFiles, readAll, useCluster } from './helpers.js'

const t = useCluster()

/**
 * A holder at `evil:1` that takes every blob but each one only after `holdMs` (under the request timeout),
 * and acknowledges them as late; it answers everything else at once. `acked` counts its acknowledgements;
 * `replicating` tells when background replication sent it a blob. Asked for a blob back, it promises 1 MiB
 * and sends one byte every 50 ms, for ever; `trickling` tells when it began, after a full garbage collection
 * of this process (where the owner runs too).
 */
async function slowHolder(
  holdMs: number,
  { name = 'evil', failAtEnd = false, holdPuts = true, invents = [] }: { name?: string; failAtEnd?: boolean; holdPuts?: boolean; invents?: string[] } = {},
): Promise<{ nodeId: string; acked: () => number; puts: () => number; putIds: () => Set<string>; replicating: () => boolean; trickling: () => boolean; close: () => Promise<void> }> {
  const transport = memoryTransport({ network: t.cluster.network, clusterSecret: 'test-cluster-secret' })
  let acked = 0
  let puts = 0
  const putIds = new Set<string>()
  // With `invents`, it answers every ref by naming those blobs missing, none of them the ref's.
  const missingAnswer = { ok: false, code: 'ERR_MISSING', missing: invents }
  // Background replication asks which blobs it lacks first, then sends them.
  let asked = false
  let replicating = false
  const timers = new Set<NodeJS.Timeout>()
  const hold = (): Promise<void> => new Promise<void>((resolve) => timers.add(setTimeout(resolve, holdMs)))
  let trickling = false
  const drip = (ex: Exchange): void => {
    const timer = setTimeout(() => {
      timers.delete(timer)
      ex.sendBytes(Buffer.from([1])).then(() => drip(ex), () => {})
    }, 50)
    timers.add(timer)
  }
  const answer = async (ex: Exchange, header: Header): Promise<void> => {
    switch (header.op) {
      case 'ref.list':
        return ex.send({ ok: true, entries: [] })
      case 'blob.has':
        asked = true
        return ex.send({ ok: true, missing: header.cipherIds })
      case 'ref.get':
        return ex.send({ ok: true })
      case 'ref.put':
        if (invents.length > 0) return ex.send(missingAnswer)
        if (failAtEnd) return ex.send({ ok: false, code: 'ERR_UNAVAILABLE', message: 'the disk failed at the commit' })
        await hold()
        acked++
        return ex.send({ ok: true })
      case 'blob.get': {
        await ex.send({ ok: true, size: 1024 * 1024 })
        // The owner made its request and its deadline in an earlier job: what only weak references hold goes now.
        await heapAfterGc()
        trickling = true
        drip(ex)
        return new Promise<void>(() => {})
      }
      case 'blob.put': {
        putIds.add(header.cipherId as string)
        await ex.send({ ok: true, have: false })
        const size = (await ex.requireHeader()).size as number
        for await (const _ of ex.body(size)) void _
        if (asked) replicating = true
        puts++
        if (holdPuts) await hold()
        acked++
        return ex.send({ ok: true })
      }
      case 'ref.store': {
        // Each blob read only after a wait: its writer stalls once the stream's window is full.
        for (let item = await ex.requireHeader(); item.end !== true; item = await ex.requireHeader()) {
          await hold()
          if (typeof item.size === 'number') for await (const _ of ex.part(item.size)) void _
        }
        if (failAtEnd) return ex.send({ ok: false, code: 'ERR_UNAVAILABLE', message: 'the disk failed at the commit' })
        if (invents.length > 0) return ex.send(missingAnswer)
        await hold()
        acked++
        return ex.send({ ok: true })
      }
      default:
        return ex.send({ ok: true })
    }
  }
  await transport.listen(`${name}:1`, (conn) => {
    void (async () => {
      for await (const stream of conn.incoming) {
        const ex = new Exchange(stream)
        void ex
          .readHeader()
          .then(async (header) => {
            if (header !== undefined) await answer(ex, header)
            await ex.end()
          })
          .catch(() => {})
      }
    })()
  })
  return {
    nodeId: transport.nodeId,
    acked: () => acked,
    puts: () => puts,
    putIds: () => putIds,
    replicating: () => replicating,
    trickling: () => trickling,
    close: async () => {
      for (const timer of timers) clearTimeout(timer)
      await transport.close({ signal: AbortSignal.timeout(1000) }).catch(() => {})
    },
  }
}

describe('a slow peer', () => {
  it('is left behind by a store whose quorum the other peers meet', async () => {
    const slow = await slowHolder(20_000)
    try {
      await t.cluster.add('a')
      const c = await t.cluster.add('c', ['a', 'evil'], { writeQuorum: 1 })
      await c.waitForPeers(2)
      const data = bytes(5 * 64 * 1024)
      const result = await c.store('k', data)
      expect(result.replicas).toEqual([t.cluster.servers[0]!.nodeId])
      expect(slow.acked()).toBe(0)
      expect((await readAll(c, 'k')).equals(data)).toBe(true)
    } finally {
      await slow.close()
    }
  })

  it('is taken back into a store when the peers that kept up fail at the end, and the store meets its quorum', async () => {
    // Slow on the store's stream only: once taken back, it takes each blob at once.
    const slow = await slowHolder(1_500, { holdPuts: false })
    // This one takes every blob at once and keeps up, but cannot commit them: it fails only at the end.
    const failing = await slowHolder(0, { name: 'failing', failAtEnd: true })
    try {
      const c = await t.cluster.add('c', ['failing', 'evil'], { writeQuorum: 1, concurrency: 1 })
      await c.waitForPeers(2)
      // More than the 1 MiB window a stream starts with: the slow one holds the store up and is left behind.
      const data = bytes(20 * 64 * 1024)
      const result = await c.store('k', data)
      expect(result.replicas).toEqual([slow.nodeId])
      // Its stream was reset, so it was asked what it lacks and sent all of it: 20 chunks and the manifest.
      expect(slow.puts()).toBe(21)
      expect(slow.acked()).toBe(22)
      expect((await readAll(c, 'k')).equals(data)).toBe(true)
    } finally {
      await Promise.all([slow.close(), failing.close()])
    }
  })

  it('holds no key lock over a transfer in background replication: the owner deletes the key meanwhile', async () => {
    const slow = await slowHolder(20_000)
    try {
      const c = await t.cluster.add('c', ['evil'], { writeQuorum: 0 })
      await c.waitForPeers(1)
      // Left behind by the store: background replication then sends it the blobs it lacks, and waits on it.
      expect((await c.store('k', bytes(3 * 64 * 1024))).replicas).toEqual([])
      await expect.poll(() => slow.replicating(), { timeout: 30_000 }).toBe(true)
      expect((await c.delete('k')).acknowledged).toEqual([slow.nodeId])
      expect(slow.acked()).toBe(0)
      expect(await c.has('k')).toBe(false)
    } finally {
      await slow.close()
    }
  })

  it('that trickles a blob it holds is given up on at the request timeout, also after a garbage collection', async () => {
    const slow = await slowHolder(0)
    try {
      const c = await t.cluster.add('c', ['evil'], { writeQuorum: 1, requestTimeout: 1_000 })
      await c.waitForPeers(1)
      expect((await c.store('k', bytes(3 * 64 * 1024))).replicas).toEqual([slow.nodeId])
      // The local copy is lost: the only peer that holds it is asked, and never finishes its answer.
      await Promise.all((await ownBlobFiles(t.cluster.roots[0]!)).map((f) => rm(f)))
      expect(await codeOf(readAll(c, 'k'))).toBe('ERR_UNAVAILABLE')
      expect(slow.trickling()).toBe(true)
    } finally {
      await slow.close()
    }
  })
})

describe('a peer that names blobs the ref does not use', () => {
  it('is sent none of them: the store fails on it after a few rounds, and the owner sent only its own blobs', async () => {
    const invented = Array.from({ length: 512 }, (_, i) => createHash('sha256').update(`invented ${i}`).digest('hex'))
    const liar = await slowHolder(0, { invents: invented })
    try {
      const c = await t.cluster.add('c', ['evil'], { writeQuorum: 1 })
      await c.waitForPeers(1)
      expect(await codeOf(c.store('k', bytes(3 * 64 * 1024)))).toBe('ERR_QUORUM')
      expect(invented.filter((id) => liar.putIds().has(id))).toEqual([])
    } finally {
      await liar.close()
    }
  })
})
