// Liveness and hostile inputs: nothing hangs, nothing grows without bound, no damaged blob is reused.
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { memoryTransport, type Connection } from '@dcas/p2p'
import { openIndex } from '@dcas/store'
import { describe, expect, it } from 'vitest'
import { Exchange, MAX_LIST_PAGE, MAX_REF_CHUNKS, type Header } from '../src/wire.js'
import { MAX_FRUITLESS_ENTRIES, MAX_FRUITLESS_MANIFESTS } from '../src/sync.js'
import { holderTables, type ReplicaRef } from '../src/holder-state.js'
import { createServer, type BehindEvent, type DialErrorEvent, type Server } from '../src/index.js'
import { encodeHeader } from '../src/wire.js'
import { bytes, codeOf, readAll, sha256, useCluster } from './helpers.js'

const t = useCluster()

describe('liveness', () => {
  it('ends a paused read with ERR_CLOSED when the server closes', async () => {
    const s = await t.cluster.add('solo', [], { writeQuorum: 0 })
    await s.store('k', bytes(300_000))
    const stream = s.read('k')
    await new Promise<void>((resolve) =>
      stream.once('data', () => {
        stream.pause()
        resolve()
      }),
    )
    const ended = new Promise<string | undefined>((resolve) => stream.once('error', (err: { code?: string }) => resolve(err.code)))
    await s.close()
    expect(await ended).toBe('ERR_CLOSED')
  })

  it('fails a store within the request timeout when a peer accepts requests but never answers, tries it again later, and still closes', async () => {
    const silent = memoryTransport({ network: t.cluster.network, clusterSecret: 'test-cluster-secret' })
    const held: Connection[] = []
    await silent.listen('silent:1', (conn) => {
      held.push(conn)
      void (async () => {
        for await (const _stream of conn.incoming) {
          // never answer
        }
      })()
    })
    try {
      const c = createServer({
        root: join(t.dir, 'c'),
        listen: 'c:1',
        bootstrap: ['silent:1'],
        transport: memoryTransport({ network: t.cluster.network, clusterSecret: 'test-cluster-secret' }),
        requestTimeout: 500,
      })
      // A timeout may pass: catch-up with the silent peer is scheduled again.
      const behind = new Promise<BehindEvent>((resolve) => c.once('peer:behind', resolve))
      await c.start()
      await c.waitForPeers(1)
      expect(await codeOf(c.store('k', 'hello'))).toBe('ERR_QUORUM')
      expect(await behind).toMatchObject({ nodeId: silent.nodeId })
      await c.close()
    } finally {
      for (const conn of held) conn.abort()
      await silent.close({ signal: AbortSignal.timeout(1000) }).catch(() => {})
    }
  })

  it('tells why a member that was connected and went away cannot be dialled', async () => {
    const a = await t.cluster.add('a', [], { writeQuorum: 0 })
    const b = await t.cluster.add('b', ['a'])
    await Promise.all([a.waitForPeers(1), b.waitForPeers(1)])
    await b.close()
    const failed = new Promise<DialErrorEvent>((resolve) => a.on('dial:error', (e) => e.address === 'b:1' && resolve(e)))
    // Placed on b too: repair dials it, whichever of the two dials the other.
    await a.store('k', 'v')
    const event = await failed
    expect(event.address).toBe('b:1')
    expect(event.message.length).toBeGreaterThan(0)
  })

  it('does not dial itself again when its own address is among the bootstrap peers', async () => {
    const s = await t.cluster.add('self', ['self'], { writeQuorum: 0 })
    const err = await new Promise<{ code?: string }>((resolve) => s.once('dial:error', resolve))
    expect(err.code).toBe('ERR_INVALID_OPTIONS')
    expect(s.peers()).toEqual([])
    await s.store('k', 'v')
    expect((await s.delete('k')).pending).toEqual([])
  })
})

describe('hostile peers', () => {
  it('grows a holder memory with the bytes a peer sends, not with the size it announces', async () => {
    await t.cluster.add('a')
    const evil = memoryTransport({ network: t.cluster.network, clusterSecret: 'test-cluster-secret' })
    const conn = await evil.dial('a:1')
    try {
      const id = '0'.repeat(64)
      const header = encodeHeader({ v: 1, op: 'ref.put', refId: id, version: 1, manifestCipherId: id, size: 1, count: MAX_REF_CHUNKS, bodySize: 2 + MAX_REF_CHUNKS * 67 })
      const before = process.memoryUsage().arrayBuffers
      const streams = await Promise.all(Array.from({ length: 8 }, () => conn.openStream()))
      for (const stream of streams) await stream.write(Buffer.concat([header, Buffer.from('[')]))
      // the holder has read the header and the first body byte of each once it answers another request
      const probe = await conn.openStream()
      await probe.write(encodeHeader({ v: 1, op: 'blob.has', cipherIds: [id] }))
      await probe.closeWrite()
      for await (const _ of probe);
      const grown = process.memoryUsage().arrayBuffers - before
      expect(grown).toBeLessThan(16 * 1024 * 1024)
    } finally {
      conn.abort()
      await evil.close({ signal: AbortSignal.timeout(1000) }).catch(() => {})
    }
  })

  it('closes the connection of a peer that sends a malformed request, and goes on serving others', async () => {
    await refusedByA({ v: 1, op: 'blob.put', cipherId: 'not an id' })
  })

  it.each(['nope', 'constructor', 'toString', 'hasOwnProperty', '__proto__', 'valueOf'])('refuses %s as an operation, as any unknown one', async (op) => {
    expect(await refusedByA({ v: 1, op })).toMatchObject({ ok: false, code: 'ERR_PROTOCOL', message: `unknown operation "${op}"` })
  })
})

/**
 * Starts holder a and owner b, sends `header` to a from a peer that knows the cluster secret, and resolves to a's
 * answer (if any) once a has closed that connection; a still serves b afterwards.
 */
async function refusedByA(header: Record<string, unknown>): Promise<Header | undefined> {
  const a = await t.cluster.add('a')
  const b = await t.cluster.add('b', ['a'])
  await b.waitForPeers(1)
  const evil = memoryTransport({ network: t.cluster.network, clusterSecret: 'test-cluster-secret' })
  const conn = await evil.dial('a:1')
  const stream = await conn.openStream()
  await stream.write(encodeHeader(header))
  await stream.closeWrite()
  const answer = await new Exchange(stream).readHeader().catch(() => undefined)
  expect(await conn.closed).toBeDefined()
  await evil.close({ signal: AbortSignal.timeout(1000) }).catch(() => {})
  expect((await b.store('k', 'still served')).replicas).toEqual([a.nodeId])
  return answer
}

/**
 * Makes holder `a` (the first root) lie: closed, its replica refs of `owner` rewritten by `edit`, then
 * restarted dialling the owner; resolves once the owner has caught up with it. Returns the refs as they were.
 */
async function lieAbout(a: Server, owner: Server, edit: (ref: ReplicaRef) => ReplicaRef): Promise<Array<[string, ReplicaRef]>> {
  await a.close()
  const index = await openIndex({ path: join(t.cluster.roots[0]!, 'index') })
  const { refs } = holderTables(index)
  const before = [...refs.entries({ prefix: `${owner.nodeId}/` })]
  await index.transaction((tx) => {
    for (const [key, ref] of before) tx.put(refs, key, edit(ref))
  })
  await index.close()
  const synced = new Promise<void>((resolve) => owner.on('synced', ({ nodeId }) => nodeId === a.nodeId && resolve()))
  await t.cluster.add('a', ['c'])
  await synced
  return before
}

describe('lying peers', () => {
  it('keeps its objects when a peer reports deletes of them that the owner never made', async () => {
    const a = await t.cluster.add('a')
    const c = await t.cluster.add('c', ['a'])
    await c.waitForPeers(1)
    const data = [bytes(100_000), bytes(100_000)]
    await c.store('k0', data[0]!)
    await c.store('k1', data[1]!)
    // A's disk now says both refs were deleted, later and at higher versions, as a lying peer would.
    const forged = await lieAbout(a, c, (ref) => ({ version: ref.version + 5, deleted: true, writtenAt: Date.now() + 1e9, updatedAt: Date.now() }))
    expect(forged).toHaveLength(2)
    expect((await c.list()).map((e) => e.key)).toEqual(['k0', 'k1'])
    expect(await readAll(c, 'k0')).toEqual(data[0])
    expect(await readAll(c, 'k1')).toEqual(data[1])
    expect((await c.stat('k0')).version).toBe(1)
  })

  it('keeps its versions when a peer reports versions of its keys that no manifest backs', async () => {
    const a = await t.cluster.add('a')
    const c = await t.cluster.add('c', ['a'], { writeQuorum: 0 })
    await c.waitForPeers(1)
    const data = bytes(100_000)
    await c.store('k', data)
    await lieAbout(a, c, ({ writtenAt: _, ...rest }) => ({ ...rest, version: Number.MAX_SAFE_INTEGER - 1 }))
    expect((await c.stat('k')).version).toBe(1)
    expect(await readAll(c, 'k')).toEqual(data)
    // the lying peer refuses the next version as stale: it is not believed either
    expect((await c.store('k', 'next')).version).toBe(2)
  })
})

describe('local blobs', () => {
  it('rewrites a damaged local chunk when a store brings the same bytes, instead of reusing it', async () => {
    const s = await t.cluster.add('solo', [], { writeQuorum: 0 })
    const data = bytes(10_000)
    await s.store('k1', data)
    const id = sha256(data)
    const path = join(t.cluster.roots[0]!, 'blobs', id.slice(0, 2), id.slice(2, 4), id)
    const content = await readFile(path)
    content[0]! ^= 1
    await writeFile(path, content)
    await s.store('k2', data)
    expect(await readAll(s, 'k2')).toEqual(data)
    expect(await readAll(s, 'k1')).toEqual(data)
  })
})

describe('a peer that lists without end', () => {
  it('is read a bounded number of pages in catch-up, which still ends', async () => {
    const evil = memoryTransport({ network: t.cluster.network, clusterSecret: 'test-cluster-secret' })
    let pages = 0
    let next = 0n
    await evil.listen('evil:1', (conn) => {
      void (async () => {
        for await (const stream of conn.incoming) {
          void (async () => {
            const ex = new Exchange(stream)
            const header = await ex.readHeader()
            if (header?.op === 'ref.list') {
              pages++
              // A full page of made-up deletes, each refId above the last: it never ends.
              const entries = Array.from({ length: MAX_LIST_PAGE }, () => ({ refId: (next++).toString(16).padStart(64, '0'), version: 1, deleted: true, writtenAt: 1 }))
              await ex.send({ ok: true, entries })
            } else {
              await ex.send({ ok: false, code: 'ERR_NOPE', message: 'no' })
            }
            await ex.end()
          })().catch(() => {})
        }
      })()
    })
    try {
      const c = await t.cluster.add('c', ['evil'], { writeQuorum: 0 })
      // A peer that sends no peer records is taken as a member after a while; catch-up with it starts then.
      await c.waitForPeers(1)
      await c.store('mine', 'kept')
      await c.waitForSync()
      expect(pages).toBeGreaterThan(1)
      expect(pages * MAX_LIST_PAGE).toBeLessThanOrEqual(MAX_FRUITLESS_ENTRIES + MAX_LIST_PAGE)
      expect(String(await readAll(c, 'mine'))).toBe('kept')
    } finally {
      await evil.close({ signal: AbortSignal.timeout(1000) }).catch(() => {})
    }
  })

  it('fetches a bounded number of its garbage manifests in catch-up, which still ends', async () => {
    const evil = memoryTransport({ network: t.cluster.network, clusterSecret: 'test-cluster-secret' })
    // Random bytes it holds (they hash to their id, and decrypt to nothing), or blobs it lacks.
    const garbage = bytes(4096)
    const garbageId = sha256(garbage)
    // It stops after this many pages, so that catch-up ends even if it were read to the end.
    const lastPage = Math.ceil((2 * MAX_FRUITLESS_ENTRIES) / MAX_LIST_PAGE)
    let pages = 0
    let gets = 0
    let next = 0n
    await evil.listen('evil:1', (conn) => {
      void (async () => {
        for await (const stream of conn.incoming) {
          void (async () => {
            const ex = new Exchange(stream)
            const header = await ex.readHeader()
            if (header?.op === 'ref.list') {
              pages++
              // Full pages of live refs this owner never wrote, each refId above the last.
              const entries =
                pages > lastPage
                  ? []
                  : Array.from({ length: MAX_LIST_PAGE }, (_, i) => ({ refId: (next++).toString(16).padStart(64, '0'), version: 1, deleted: false, manifestCipherId: i % 2 === 0 ? garbageId : sha256(bytes(32)) }))
              await ex.send({ ok: true, entries })
            } else if (header?.op === 'blob.get') {
              gets++
              if (header.cipherId === garbageId) {
                await ex.send({ ok: true, size: garbage.length })
                await ex.sendBytes(garbage)
              } else await ex.send({ ok: false, code: 'ERR_NOT_FOUND', message: 'no such blob' })
            } else {
              await ex.send({ ok: false, code: 'ERR_NOPE', message: 'no' })
            }
            await ex.end()
          })().catch(() => {})
        }
      })()
    })
    try {
      const c = await t.cluster.add('c', ['evil'], { writeQuorum: 0 })
      await c.store('mine', 'kept')
      await c.waitForPeers(1)
      await c.waitForSync()
      expect(gets).toBeLessThanOrEqual(MAX_FRUITLESS_MANIFESTS)
      expect(pages).toBeLessThanOrEqual(lastPage)
      expect(pages * MAX_LIST_PAGE).toBeLessThanOrEqual(MAX_FRUITLESS_ENTRIES + MAX_LIST_PAGE)
      expect((await c.list()).map((e) => e.key)).toEqual(['mine'])
      expect(String(await readAll(c, 'mine'))).toBe('kept')
    } finally {
      await evil.close({ signal: AbortSignal.timeout(1000) }).catch(() => {})
    }
  })
})
