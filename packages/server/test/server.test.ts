import { cp, mkdir, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { Readable } from 'node:stream'
import { describe, expect, it, vi } from 'vitest'
import type { BehindEvent, HealedEvent, QuorumDetails } from '../src/index.js'
import { bytes, codeOf, foundUnder, ownBlobFiles, readAll, replicaFiles, sha256, useCluster } from './helpers.js'

const t = useCluster()

/** Makes an eighth of B's blob directories for C files: B fails the blobs that go there, keeps the others and stays connected. */
async function breakHolder(holderRoot: string, owner: string): Promise<{ repair: () => Promise<void> }> {
  const blobs = join(holderRoot, 'replicas', owner, 'blobs')
  await mkdir(blobs, { recursive: true })
  const blocked = Array.from({ length: 32 }, (_, i) => join(blobs, (224 + i).toString(16)))
  await Promise.all(blocked.map((path) => writeFile(path, 'not a directory')))
  return { repair: () => Promise.all(blocked.map((path) => rm(path))).then(() => undefined) }
}
const heldBlobs = async (holderRoot: string, owner: string): Promise<string[]> =>
  (await replicaFiles(holderRoot, owner)).filter((f) => /^[0-9a-f]{64}$/.test(basename(f)))

describe('store and read', () => {
  it('stores on C and reads back on C, with every peer acknowledging a copy', async () => {
    const [a, b, c] = await t.cluster.triangle()
    const data = bytes(300_000)
    const result = await c.store('item_0', data)
    expect(result).toMatchObject({ key: 'item_0', size: data.length, sha256: sha256(data), version: 1 })
    expect(result.replicas.sort()).toEqual([a.nodeId, b.nodeId].sort())
    expect(await readAll(c, 'item_0')).toEqual(data)
  })

  it('reports the SHA-256 of the whole object, for an empty one, ones of one chunk and ones of several', async () => {
    const [, , c] = await t.cluster.triangle()
    // The cluster cuts 64 KiB chunks.
    for (const size of [0, 1, 65_535, 65_536, 65_537, 200_000]) {
      const data = bytes(size)
      const result = await c.store(`digest-${size}`, data)
      expect(result.sha256, `${size} bytes`).toBe(sha256(data))
      expect((await c.stat(`digest-${size}`)).sha256, `${size} bytes`).toBe(sha256(data))
    }
  })

  it('accepts a string, a Readable and an async iterable, and stores the empty object', async () => {
    const [, , c] = await t.cluster.triangle()
    await c.store('s', 'big conten0')
    await c.store('r', Readable.from([Buffer.from('ab'), Buffer.from('cd')]))
    await c.store('i', (async function* () {
      await Promise.resolve()
      yield new Uint8Array([1, 2])
      yield new Uint8Array([3])
    })())
    await c.store('empty', new Uint8Array(0))
    expect((await readAll(c, 's')).toString()).toBe('big conten0')
    expect((await readAll(c, 'r')).toString()).toBe('abcd')
    expect([...(await readAll(c, 'i'))]).toEqual([1, 2, 3])
    expect((await readAll(c, 'empty')).length).toBe(0)
  })

  it('serves byte ranges that cross chunk boundaries', async () => {
    const [, , c] = await t.cluster.triangle()
    const data = bytes(200_000)
    await c.store('ranged', data)
    expect(await readAll(c, 'ranged', { offset: 65_000, length: 70_000 })).toEqual(data.subarray(65_000, 135_000))
    expect(await readAll(c, 'ranged', { offset: 199_999 })).toEqual(data.subarray(199_999))
    expect((await readAll(c, 'ranged', { offset: 200_000 })).length).toBe(0)
  })

  it('gives peers only ciphertext: a canary in the data is on no peer disk, but is on the owner', async () => {
    const [, , c] = await t.cluster.triangle()
    const canary = Buffer.from('CANARY-7f3a9c-never-on-a-peer')
    await c.store('secret', Buffer.concat([bytes(1000), canary, bytes(100_000)]))
    const [rootA, rootB, rootC] = t.cluster.roots as [string, string, string]
    expect(await foundUnder(rootA, canary)).toEqual([])
    expect(await foundUnder(rootB, canary)).toEqual([])
    expect((await foundUnder(rootC, canary)).length).toBeGreaterThan(0)
    // and peers hold the key name nowhere either
    expect(await foundUnder(rootA, Buffer.from('secret'))).toEqual([])
    expect((await replicaFiles(rootA, c.nodeId)).length).toBeGreaterThan(0)
    expect((await replicaFiles(rootB, c.nodeId)).length).toBeGreaterThan(0)
  })

  it('stores identical chunks once, locally and on peers', async () => {
    const [, , c] = await t.cluster.triangle()
    const chunk = bytes(64 * 1024)
    await c.store('twice', Buffer.concat([chunk, chunk, chunk]))
    await c.store('again', chunk)
    const own = await ownBlobFiles(t.cluster.roots[2]!)
    // one chunk blob + two manifests
    expect(own.length).toBe(3)
    // one chunk ciphertext + two manifest ciphertexts
    expect((await replicaFiles(t.cluster.roots[0]!, c.nodeId)).length).toBe(3)
  })

  it('makes a new version when a key is stored again, and frees the old chunks everywhere', async () => {
    const [, , c] = await t.cluster.triangle()
    await c.store('k', bytes(200_000))
    const second = bytes(100_000)
    const result = await c.store('k', second)
    expect(result.version).toBe(2)
    expect(await readAll(c, 'k')).toEqual(second)
    // 2 chunks + manifest locally, and the same count of ciphertexts on each peer
    expect((await ownBlobFiles(t.cluster.roots[2]!)).length).toBe(3)
    expect((await replicaFiles(t.cluster.roots[0]!, c.nodeId)).length).toBe(3)
    expect((await replicaFiles(t.cluster.roots[1]!, c.nodeId)).length).toBe(3)
  })
})

describe('keys', () => {
  it('keeps path-like keys opaque and rejects invalid ones with ERR_INVALID_KEY', async () => {
    const [, , c] = await t.cluster.triangle()
    for (const key of ['../../x', 'a/../../b', 'k'.repeat(1024)]) {
      await c.store(key, key)
      expect((await readAll(c, key)).toString()).toBe(key)
    }
    for (const key of ['', 'a\0b', 'k'.repeat(1025)]) expect(await codeOf(c.store(key, 'x'))).toBe('ERR_INVALID_KEY')
    expect(() => c.read('')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_KEY' }))
  })
})

describe('healing', () => {
  it('reads every key back after C loses its blobs while running, and restores the local copy', async () => {
    const [, , c] = await t.cluster.triangle()
    const objects = new Map([0, 1, 2, 3].map((i) => [`item_${i}`, bytes(50_000 + i * 40_000)]))
    for (const [k, v] of objects) await c.store(k, v)
    await rm(join(t.cluster.roots[2]!, 'blobs'), { recursive: true, force: true })
    const healed: HealedEvent[] = []
    c.on('healed', (e) => healed.push(e))
    for (const [k, v] of objects) expect(await readAll(c, k)).toEqual(v)
    expect(healed.length).toBeGreaterThan(0)
    const restored = await ownBlobFiles(t.cluster.roots[2]!)
    // every chunk and manifest is back: reading again needs no peer
    const before = healed.length
    for (const [k, v] of objects) expect(await readAll(c, k)).toEqual(v)
    expect(healed.length).toBe(before)
    expect(restored.length).toBeGreaterThan(objects.size)
  })

  it('serves byte ranges of chunks it fetches from peers after a loss, from inside them and across their boundaries', async () => {
    const [, , c] = await t.cluster.triangle()
    const data = bytes(5 * 65_536 + 1234)
    await c.store('ranged', data)
    const ranges: Array<[offset: number, length: number | undefined]> = [
      [70_001, 3],
      [65_535, 2],
      [1000, 200_000],
      [131_072, 65_536],
      [5 * 65_536, undefined],
      [300_000, 1],
    ]
    for (const [offset, length] of ranges) {
      // Lost each time: every range is served from chunks fetched, opened and healed anew.
      await rm(join(t.cluster.roots[2]!, 'blobs'), { recursive: true, force: true })
      const want = data.subarray(offset, length === undefined ? undefined : offset + length)
      expect(await readAll(c, 'ranged', length === undefined ? { offset } : { offset, length }), `${offset}+${length}`).toEqual(want)
    }
    await rm(join(t.cluster.roots[2]!, 'blobs'), { recursive: true, force: true })
    expect(await readAll(c, 'ranged')).toEqual(data)
  })

  it('reads every key back after C loses its blobs and restarts', async () => {
    const [, , c] = await t.cluster.triangle()
    const data = bytes(150_000)
    await c.store('item_2', data)
    await c.close()
    await rm(join(t.cluster.roots[2]!, 'blobs'), { recursive: true, force: true })
    const c2 = await t.cluster.add('c2', ['a', 'b'], { root: t.cluster.roots[2]! })
    await c2.waitForPeers(2)
    expect(c2.nodeId).toBe(c.nodeId)
    expect(await readAll(c2, 'item_2')).toEqual(data)
  })

  it('returns the exact bytes after one byte of a chunk file rots, and heals that chunk', async () => {
    const [, , c] = await t.cluster.triangle()
    const data = bytes(200_000)
    await c.store('rot', data)
    // a chunk file (full chunks are 64 KiB here; the manifest is smaller)
    const sizes = await Promise.all((await ownBlobFiles(t.cluster.roots[2]!)).map(async (f) => [f, (await readFile(f)).length] as const))
    const victim = sizes.find(([, n]) => n === 64 * 1024)![0]
    const content = await readFile(victim)
    content[Math.floor(content.length / 2)]! ^= 0x01
    await writeFile(victim, content)
    const healed: HealedEvent[] = []
    c.on('healed', (e) => healed.push(e))
    expect(await readAll(c, 'rot')).toEqual(data)
    expect(healed.length).toBe(1)
    expect(sha256(await readFile(victim))).toBe(victim.split('/').pop())
  })

  it('reads a lost object whose replicas rotted on one peer from the other, and sends that peer good copies', async () => {
    const [, , c] = await t.cluster.triangle({ writeQuorum: 'all' })
    const data = bytes(8 * 64 * 1024)
    await c.store('rotten-replicas', data)
    const aRoot = t.cluster.roots[0]!
    const intact = async (): Promise<string[]> => {
      const ok: string[] = []
      for (const f of await heldBlobs(aRoot, c.nodeId)) if (sha256(await readFile(f)) === basename(f)) ok.push(basename(f))
      return ok
    }
    // Every chunk-sized replica on A rots; the owner loses its own copy.
    const rotted: string[] = []
    for (const f of await heldBlobs(aRoot, c.nodeId)) {
      const content = await readFile(f)
      if (content.length < 64 * 1024) continue
      content[content.length >> 1]! ^= 0x01
      await writeFile(f, content)
      rotted.push(basename(f))
    }
    expect(rotted.length).toBe(8)
    await rm(join(t.cluster.roots[2]!, 'blobs'), { recursive: true, force: true })
    expect(await readAll(c, 'rotten-replicas')).toEqual(data)
    // Reads ahead ask the two holders in turn: A, asked first for some chunks, failed them and gets them from C.
    await vi.waitFor(async () => expect((await intact()).filter((id) => rotted.includes(id)).length).toBeGreaterThan(0), { timeout: 10_000 })
  })

  it('fails a read with ERR_UNAVAILABLE, not a clean end, when no peer can supply a lost chunk', async () => {
    const a = await t.cluster.add('solo', [], { writeQuorum: 0 })
    await a.store('alone', bytes(100_000))
    await rm(join(t.cluster.roots[0]!, 'blobs'), { recursive: true, force: true })
    expect(await codeOf(readAll(a, 'alone'))).toBe('ERR_UNAVAILABLE')
  })

  it('rebuilds the whole key list from peers on an empty root holding only a copy of identity/', async () => {
    const [, , c] = await t.cluster.triangle()
    const objects = new Map([0, 1, 2].map((i) => [`item_${i}`, bytes(70_000 + i)]))
    for (const [k, v] of objects) await c.store(k, v)
    await c.store('gone', 'deleted before the disaster')
    await c.delete('gone')
    await c.close()
    const fresh = join(t.dir, 'fresh')
    await cp(join(t.cluster.roots[2]!, 'identity'), join(fresh, 'identity'), { recursive: true })
    // over TCP the node id comes from the TLS identity in identity/; the memory transport is told it
    const restored = await t.cluster.add('d', ['a', 'b'], { root: fresh, nodeId: c.nodeId })
    await restored.waitForPeers(2)
    await restored.waitForSync()
    expect((await restored.list()).map((e) => e.key)).toEqual([...objects.keys()])
    for (const [k, v] of objects) expect(await readAll(restored, k)).toEqual(v)
  })

  it('stores a key deleted before the disaster again above the version of its tombstone on peers, so peers take it', async () => {
    const [a, b, c] = await t.cluster.triangle()
    for (let v = 0; v < 3; v++) await c.store('reborn', `version ${v}`)
    await c.delete('reborn')
    await c.close()
    const fresh = join(t.dir, 'fresh')
    await cp(join(t.cluster.roots[2]!, 'identity'), join(fresh, 'identity'), { recursive: true })
    const restored = await t.cluster.add('d', ['a', 'b'], { root: fresh, nodeId: c.nodeId })
    await restored.waitForPeers(2)
    await restored.waitForSync()
    const result = await restored.store('reborn', 'stored again after the disaster')
    expect(result.version).toBeGreaterThan(3)
    expect(result.replicas.sort()).toEqual([a.nodeId, b.nodeId].sort())
  })
})

describe('failed stores', () => {
  it('leaves no blob behind, on the owner or its peers, when a store fails before its commit', async () => {
    const [, , c] = await t.cluster.triangle()
    const failing = (async function* () {
      await Promise.resolve()
      for (let i = 0; i < 5; i++) yield bytes(64 * 1024)
      throw new Error('the source broke')
    })()
    await expect(c.store('broken', failing)).rejects.toThrow('the source broke')
    await c.waitForSync()
    expect(await ownBlobFiles(t.cluster.roots[2]!)).toEqual([])
    expect(await replicaFiles(t.cluster.roots[0]!, c.nodeId)).toEqual([])
    expect(await replicaFiles(t.cluster.roots[1]!, c.nodeId)).toEqual([])
  })

  it('tells a peer that failed a committed store to drop the blobs it got and no ref uses', async () => {
    const [, b, c] = await t.cluster.triangle({ writeQuorum: 1 })
    await breakHolder(t.cluster.roots[1]!, c.nodeId)
    const result = await c.store('partly', bytes(80 * 64 * 1024))
    expect(result.replicas).not.toContain(b.nodeId)
    // Deleted before B could ever take it: whatever B got of it is of no use.
    await c.delete('partly')
    await c.waitForSync()
    expect(await heldBlobs(t.cluster.roots[1]!, c.nodeId)).toEqual([])
  })

  it('catches up again with a peer that failed a store while staying connected, once it can take it', async () => {
    const [, b, c] = await t.cluster.triangle({ writeQuorum: 1 })
    const holder = await breakHolder(t.cluster.roots[1]!, c.nodeId)
    const behind = new Promise<BehindEvent>((resolve) => c.once('peer:behind', resolve))
    const data = bytes(80 * 64 * 1024)
    expect((await c.store('later', data)).replicas).not.toContain(b.nodeId)
    const event = await behind
    expect(event).toMatchObject({ nodeId: b.nodeId })
    expect(event.retryIn).toBeGreaterThan(0)
    await holder.repair()
    await c.waitForSync()
    expect((await c.stat('later')).replicas).toContain(b.nodeId)
    expect(await heldBlobs(t.cluster.roots[1]!, c.nodeId)).toHaveLength(81)
  })
})

describe('delete', () => {
  it('removes the key on every peer and frees its blobs', async () => {
    const [a, b, c] = await t.cluster.triangle()
    await c.store('item_1', bytes(100_000))
    const result = await c.delete('item_1')
    expect(result.acknowledged.sort()).toEqual([a.nodeId, b.nodeId].sort())
    expect(result.pending).toEqual([])
    expect(await c.has('item_1')).toBe(false)
    expect(await codeOf(readAll(c, 'item_1'))).toBe('ERR_NOT_FOUND')
    expect(await ownBlobFiles(t.cluster.roots[2]!)).toEqual([])
    expect(await replicaFiles(t.cluster.roots[0]!, c.nodeId)).toEqual([])
    expect(await replicaFiles(t.cluster.roots[1]!, c.nodeId)).toEqual([])
  })

  it('keeps a blob that another key still uses', async () => {
    const [, , c] = await t.cluster.triangle()
    const shared = bytes(64 * 1024)
    await c.store('one', shared)
    await c.store('two', Buffer.concat([shared, bytes(10)]))
    await c.delete('one')
    expect((await readAll(c, 'two')).subarray(0, shared.length)).toEqual(shared)
  })

  it('fails with ERR_NOT_FOUND for a key never stored', async () => {
    const [, , c] = await t.cluster.triangle()
    expect(await codeOf(c.delete('never'))).toBe('ERR_NOT_FOUND')
  })
})

describe('catch-up', () => {
  it('serves every one of several reads of a key its index lost, whichever of them (or catch-up) installs it first', async () => {
    const [, , c] = await t.cluster.triangle()
    const body = bytes(200_000)
    await c.store('k', body)
    await c.close()
    for (const dir of ['blobs', 'index']) await rm(join(t.cluster.roots[2]!, dir), { recursive: true })
    const restored = await t.cluster.add('c', ['a', 'b'], { root: t.cluster.roots[2]! })
    await restored.waitForPeers(2)
    const reads = await Promise.all(Array.from({ length: 4 }, () => readAll(restored, 'k')))
    for (const got of reads) expect(got.equals(body)).toBe(true)
  })

  it('brings a peer that was away up to exactly the live replicas', async () => {
    const [a, , c] = await t.cluster.triangle()
    await c.store('kept', bytes(100_000))
    await c.store('doomed', bytes(100_000))
    await a.close()
    await c.delete('doomed')
    const late = bytes(120_000)
    await c.store('late', late)
    const a2 = await t.cluster.add('a2', [], { root: t.cluster.roots[0]!, listen: 'a:1' })
    await a2.waitForPeers(2)
    await c.waitForSync()
    // What C stored while A was away reaches it by catch-up or by repair, whichever comes first.
    await c.waitForPlacement()
    // A holds exactly the blobs of "kept" and "late": 2 + 2 chunks and 2 manifests
    const held = await replicaFiles(t.cluster.roots[0]!, c.nodeId)
    const onB = await replicaFiles(t.cluster.roots[1]!, c.nodeId)
    expect(held.map((f) => f.split('/').pop()).sort()).toEqual(onB.map((f) => f.split('/').pop()).sort())
    expect(held.length).toBe(6)
    expect((await c.stat('late')).replicas).toContain(a2.nodeId)
  })
})

describe('late peers', () => {
  it('replicates a store to a peer that connected while it ran, once its catch-up had already passed', async () => {
    const a = await t.cluster.add('a')
    const c = await t.cluster.add('c', ['a'])
    await c.waitForPeers(1)
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    const first = bytes(70_000)
    const second = bytes(70_000)
    const storing = c.store('k', (async function* () {
      yield first
      await gate
      yield second
    })())
    const bSynced = new Promise<void>((resolve) => c.on('synced', ({ nodeId }) => nodeId !== a.nodeId && resolve()))
    const b = await t.cluster.add('b', ['c'])
    await bSynced
    release()
    const result = await storing
    expect(result.replicas).toEqual([a.nodeId])
    await c.waitForSync()
    expect((await c.stat('k')).replicas.sort()).toEqual([a.nodeId, b.nodeId].sort())
    // B (the third root) holds the 3 chunks and the manifest
    expect((await replicaFiles(t.cluster.roots[2]!, c.nodeId)).length).toBe(4)
  })
})

describe('quorum', () => {
  type QuorumFailure = { code: string; details: QuorumDetails }
  const failure = (p: Promise<unknown>): Promise<QuorumFailure | undefined> => p.then(() => undefined, (e: QuorumFailure) => e)

  it('fails with ERR_QUORUM after the local commit, naming who holds it, when fewer placed holders acknowledge than the quorum', async () => {
    const [a, b, c] = await t.cluster.triangle({ writeQuorum: 2 })
    await breakHolder(t.cluster.roots[1]!, c.nodeId)
    const err = await failure(c.store('k', bytes(80 * 64 * 1024)))
    expect(err?.code).toBe('ERR_QUORUM')
    expect(err?.details).toMatchObject({ needed: 2, replicas: [a.nodeId], reachable: 2, placed: 2, committed: true })
    expect(err?.details.failed.map((f) => f.nodeId)).toEqual([b.nodeId])
    // committed locally all the same
    expect(await c.has('k')).toBe(true)
  })

  it('leaves its peers as they were after a store whose local commit failed, and nothing brings that store back', async () => {
    const [, , c] = await t.cluster.triangle({ writeQuorum: 'all' })
    const first = await c.store('k', 'first')
    const holders = [t.cluster.roots[0]!, t.cluster.roots[1]!]
    const held = (): Promise<string[][]> => Promise.all(holders.map((root) => heldBlobs(root, c.nodeId)))
    const before = await held()
    // Every empty fan-out directory of the owner's blobs is now a file: the local commit cannot place the new chunks.
    const ownBlobs = join(t.cluster.roots[2]!, 'blobs')
    const fanOut = (await readdir(ownBlobs)).map((d) => join(ownBlobs, d))
    const blocked = (await Promise.all(fanOut.map(async (dir) => ((await readdir(dir)).length === 0 ? [dir] : [])))).flat()
    for (const dir of blocked) {
      await rmdir(dir)
      await writeFile(dir, 'not a directory')
    }
    expect(await codeOf(c.store('k', bytes(3 * 64 * 1024)))).toBe('ERR_IO')
    expect((await c.stat('k')).version).toBe(first.version)
    // The peers got the new chunks, not the ref (it goes only after the local commit): they are told to drop them.
    await vi.waitFor(async () => expect(await held()).toEqual(before), { timeout: 10_000 })
    for (const dir of blocked) {
      await rm(dir)
      await mkdir(dir)
    }
    // Nothing brings it back: not catch-up after a restart, and the next store goes above it.
    await c.close()
    const again = await t.cluster.add('c', ['a', 'b'], { writeQuorum: 'all' })
    await again.waitForPeers(2)
    await again.waitForSync()
    expect((await readAll(again, 'k')).toString()).toBe('first')
    const next = await again.store('k', 'third')
    expect(next.version).toBeGreaterThan(first.version)
    expect((await readAll(again, 'k')).toString()).toBe('third')
  })

  it('stores nothing, and says how many placed holders it reached, when fewer than the quorum can be reached', async () => {
    const [a, b, c] = await t.cluster.triangle({ writeQuorum: 'all' })
    await b.close()
    const err = await failure(c.store('k', 'x'))
    expect(err?.code).toBe('ERR_QUORUM')
    expect(err?.details).toMatchObject({ needed: 2, replicas: [], reachable: 1, placed: 2, committed: false })
    expect(err?.details.failed.map((f) => f.nodeId)).toEqual([b.nodeId])
    expect(await c.has('k')).toBe(false)
    expect(await replicaFiles(t.cluster.roots[0]!, c.nodeId)).toEqual([])
    expect(a.nodeId).not.toBe(c.nodeId)
  })

  it('fails by default on a node whose peers are all down, and stores locally with writeQuorum 0', async () => {
    const a = await t.cluster.add('a')
    const b = await t.cluster.add('b', ['a'])
    await b.waitForPeers(1)
    await a.close()
    const err = await failure(b.store('k', 'x'))
    expect(err?.details).toMatchObject({ needed: 1, reachable: 0, placed: 1, committed: false })
    const solo = await t.cluster.add('solo', [], { writeQuorum: 0 })
    expect(await solo.store('k', 'x')).toMatchObject({ replicas: [] })
  })
})

describe('admission', () => {
  it('never admits a node with another cluster secret, and sends it nothing', async () => {
    const a = await t.cluster.add('a')
    const stranger = await t.cluster.add('stranger', ['a'], { clusterSecret: 'another secret' })
    const b = await t.cluster.add('b', ['a'])
    await Promise.all([a.waitForPeers(1), b.waitForPeers(1)])
    const result = await a.store('private', 'nothing for strangers')
    expect(result.replicas).toEqual([b.nodeId])
    expect(a.peers().map((p) => p.nodeId)).toEqual([b.nodeId])
    expect(stranger.peers().filter((p) => p.connected)).toEqual([])
    const [, rootStranger, rootB] = t.cluster.roots as [string, string, string]
    expect(await replicaFiles(rootB, a.nodeId)).not.toEqual([])
    expect(await replicaFiles(rootStranger, a.nodeId)).toEqual([])
  })
})
