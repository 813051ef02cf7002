import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { bytes, Cluster, ownBlobFiles, tempDir } from './helpers.js'

let dir: { path: string; cleanup: () => Promise<void> }
let cluster: Cluster

beforeEach(async () => {
  dir = await tempDir()
  cluster = new Cluster(dir.path)
})

afterEach(async () => {
  await cluster.close()
  await dir.cleanup()
})

describe('a store that fails before its commit', () => {
  it('leaves no blob behind when its source fails midway, and keeps the chunks other keys hold', async () => {
    const a = await cluster.add('solo')
    const shared = bytes(64 * 1024)
    await a.store('kept', shared)
    const before = (await ownBlobFiles(cluster.roots[0]!)).sort()
    const failing = (async function* () {
      yield shared
      yield bytes(200_000)
      await Promise.resolve()
      throw new Error('the client went away')
    })()
    await expect(a.store('broken', failing)).rejects.toThrow('the client went away')
    expect(await a.has('broken')).toBe(false)
    expect((await ownBlobFiles(cluster.roots[0]!)).sort()).toEqual(before)
  })
})
