// Metadata kept with each version, conditional stores, and objects made of other objects' chunks.
import { join } from 'node:path'
import { rm } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { bytes, codeOf, ownBlobFiles, readAll, replicaFiles, sha256, useCluster } from './helpers.js'

const t = useCluster()

describe('metadata', () => {
  it('is kept with the version it was stored with, in stat and list, and travels to a node recovering from identity/', async () => {
    const [, , c] = await t.cluster.triangle()
    await c.store('doc', 'hello', { metadata: { 'content-type': 'text/plain', 'x-amz-meta-owner': 'me' } })
    expect((await c.stat('doc')).metadata).toEqual({ 'content-type': 'text/plain', 'x-amz-meta-owner': 'me' })
    expect((await c.list())[0]!.metadata).toEqual({ 'content-type': 'text/plain', 'x-amz-meta-owner': 'me' })
    await c.store('doc', 'hello again')
    expect((await c.stat('doc')).metadata).toEqual({})
    await c.store('kept', 'x', { metadata: { 'cache-control': 'no-store' } })
    await c.close()
    for (const dir of ['blobs', 'index']) await rm(join(t.cluster.roots[2]!, dir), { recursive: true })
    const restored = await t.cluster.add('c', ['a', 'b'], { root: t.cluster.roots[2]! })
    await restored.waitForPeers(2)
    await restored.waitForSync()
    expect((await restored.stat('kept')).metadata).toEqual({ 'cache-control': 'no-store' })
  })

  it('can be computed after the data has been read to its end', async () => {
    const s = await t.cluster.add('solo')
    let seen = 0
    const data = (function* () {
      for (let i = 0; i < 3; i++) {
        seen++
        yield bytes(100_000)
      }
    })()
    await s.store('k', data, { metadata: () => ({ 'x-pieces': String(seen) }) })
    expect((await s.stat('k')).metadata).toEqual({ 'x-pieces': '3' })
  })

  it('that is malformed or too large fails the store with ERR_INVALID_OPTIONS and leaves nothing', async () => {
    const s = await t.cluster.add('solo')
    expect(await codeOf(s.store('k', bytes(100_000), { metadata: { Upper: 'x' } }))).toBe('ERR_INVALID_OPTIONS')
    expect(await codeOf(s.store('k', bytes(100_000), { metadata: { big: 'x'.repeat(9000) } }))).toBe('ERR_INVALID_OPTIONS')
    expect(await s.has('k')).toBe(false)
    expect(await ownBlobFiles(t.cluster.roots[0]!)).toEqual([])
  })
})

describe('precondition', () => {
  it('stores a key only while it holds, checked under the key lock, and leaves nothing otherwise', async () => {
    const [, b, c] = await t.cluster.triangle()
    const ifAbsent = { precondition: (current: unknown) => current === undefined }
    await c.store('once', 'first', ifAbsent)
    expect(await codeOf(c.store('once', bytes(200_000), ifAbsent))).toBe('ERR_PRECONDITION')
    expect(String(await readAll(c, 'once'))).toBe('first')
    // Two at once: exactly one wins.
    const codes = await Promise.all([codeOf(c.store('race', 'a', ifAbsent)), codeOf(c.store('race', 'b', ifAbsent))])
    expect(codes.sort()).toEqual(['ERR_PRECONDITION', undefined].sort())
    await c.waitForSync()
    // Only the blobs of the stored versions remain on the peer.
    expect((await replicaFiles(t.cluster.roots[1]!, c.nodeId)).length).toBe(4)
    expect(b.nodeId).toBeDefined()
  })
})

describe('compose', () => {
  it("makes an object of other objects' chunks, in order, without copying a chunk", async () => {
    const [, , c] = await t.cluster.triangle()
    const parts = [bytes(150_000), bytes(64 * 1024), bytes(10)]
    for (const [i, part] of parts.entries()) await c.store(`part/${i}`, part)
    const before = (await ownBlobFiles(t.cluster.roots[2]!)).length
    const result = await c.compose('whole', ['part/0', 'part/1', 'part/2'], { metadata: { etag: 'x-3' } })
    const whole = Buffer.concat(parts)
    expect(result).toMatchObject({ key: 'whole', size: whole.length, sha256: sha256(whole), version: 1 })
    expect(result.replicas).toHaveLength(2)
    // Only the new manifest was written.
    expect((await ownBlobFiles(t.cluster.roots[2]!)).length).toBe(before + 1)
    expect((await readAll(c, 'whole')).equals(whole)).toBe(true)
    expect((await readAll(c, 'whole', { offset: 150_000 - 5, length: 10 })).equals(whole.subarray(150_000 - 5, 150_000 + 5))).toBe(true)
    expect((await c.stat('whole')).metadata).toEqual({ etag: 'x-3' })
  })

  it('keeps the chunks when the sources are deleted, and reads the object after local loss from peers', async () => {
    const [, , c] = await t.cluster.triangle()
    const parts = [bytes(100_000), bytes(100_000)]
    await c.store('p0', parts[0]!)
    await c.store('p1', parts[1]!)
    await c.compose('joined', ['p0', 'p1'])
    await c.delete('p0')
    await c.delete('p1')
    await rm(join(t.cluster.roots[2]!, 'blobs'), { recursive: true })
    expect((await readAll(c, 'joined')).equals(Buffer.concat(parts))).toBe(true)
  })

  it('of a key with itself appends to it', async () => {
    const s = await t.cluster.add('solo')
    await s.store('log', 'one,')
    await s.store('more', 'two')
    await s.compose('log', ['log', 'more'])
    expect(String(await readAll(s, 'log'))).toBe('one,two')
    expect((await s.stat('log')).version).toBe(2)
  })

  it('fails with ERR_NOT_FOUND for a missing source and ERR_PRECONDITION when refused, leaving the key as it was', async () => {
    const s = await t.cluster.add('solo')
    await s.store('a', 'A')
    expect(await codeOf(s.compose('x', ['a', 'missing']))).toBe('ERR_NOT_FOUND')
    expect(await s.has('x')).toBe(false)
    await s.store('x', 'X')
    expect(await codeOf(s.compose('x', ['a'], { precondition: (current) => current === undefined }))).toBe('ERR_PRECONDITION')
    expect(String(await readAll(s, 'x'))).toBe('X')
    expect(await codeOf(s.compose('x', []))).toBe('ERR_INVALID_OPTIONS')
    // A source at another version than the one asked for.
    await s.store('a', 'A again')
    expect(await codeOf(s.compose('y', [{ key: 'a', version: 1 }]))).toBe('ERR_PRECONDITION')
    expect(String(await readAll(s, 'y').catch(() => 'none'))).toBe('none')
    expect((await s.compose('y', [{ key: 'a', version: 2 }])).size).toBe(7)
  })
})
