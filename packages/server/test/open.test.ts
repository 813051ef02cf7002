// open(): one resolution of a key, whose stat and reads agree however the key changes meanwhile.
import { describe, expect, it } from 'vitest'
import { bytes, codeOf, collect, ownBlobFiles, readAll, sha256, useCluster } from './helpers.js'

const t = useCluster()

describe('open', () => {
  it('reads the version it opened after the key was overwritten and deleted, then lets its chunks go', async () => {
    const s = await t.cluster.add('solo', [], { writeQuorum: 0 })
    const first = bytes(300_000)
    await s.store('k', first)
    const opened = await s.open('k')
    expect(opened.stat).toMatchObject({ key: 'k', version: 1, size: first.length, sha256: sha256(first) })
    await s.store('k', bytes(200_000))
    expect((await collect(opened.read())).equals(first)).toBe(true)
    await s.delete('k')
    expect((await collect(opened.read({ offset: 100, length: 1000 }))).equals(first.subarray(100, 1100))).toBe(true)
    expect(await codeOf(readAll(s, 'k'))).toBe('ERR_NOT_FOUND')
    opened.close()
    await s.store('other', 'x')
    // Only the new key's chunk and manifest remain: the opened version's blobs went with close().
    await expect.poll(async () => (await ownBlobFiles(t.cluster.roots[0]!)).length).toBe(2)
    expect(() => opened.read()).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }))
  })

  it('fails with ERR_NOT_FOUND for a key with no object', async () => {
    const s = await t.cluster.add('solo', [], { writeQuorum: 0 })
    expect(await codeOf(s.open('nothing'))).toBe('ERR_NOT_FOUND')
  })
})
