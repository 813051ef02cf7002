// What @dcas/cli needs from the server: scrub(), no blobs left by a failed store, dial:error.
import { once } from 'node:events'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import type { DialErrorEvent } from '../src/index.js'
import { bytes, ownBlobFiles, sha256, useCluster } from './helpers.js'

const t = useCluster()

/** Blob files of a node that hold a full 64 KiB chunk (the test cluster's chunk size). */
async function chunkFiles(root: string): Promise<string[]> {
  const out: string[] = []
  for (const f of await ownBlobFiles(root)) if ((await readFile(f)).length === 64 * 1024) out.push(f)
  return out.sort()
}

describe('scrub', () => {
  it('verifies every object and heals a lost and a rotted chunk from peers', async () => {
    const [, , c] = await t.cluster.triangle()
    const objects = [bytes(150_000), bytes(70_000), bytes(10)]
    for (const [i, data] of objects.entries()) await c.store(`item_${i}`, data)
    const [lost, rotted] = (await chunkFiles(t.cluster.roots[2]!)) as [string, string]
    await rm(lost)
    const content = await readFile(rotted)
    content[100]! ^= 0x01
    await writeFile(rotted, content)

    const result = await c.scrub()
    expect(result).toEqual({ objects: 3, bytes: 150_000 + 70_000 + 10, healed: 2, failed: [], audited: 6, lostCopies: [] })
    for (const f of [lost, rotted]) expect(sha256(await readFile(f))).toBe(f.split('/').pop())
    expect(await c.scrub()).toMatchObject({ objects: 3, healed: 0, failed: [] })
  })

  it('reports an object no peer can heal and goes on with the others', async () => {
    const a = await t.cluster.add('solo', [], { writeQuorum: 0 })
    await a.store('damaged', bytes(100_000))
    await a.store('intact', 'still here')
    const [victim] = (await chunkFiles(t.cluster.roots[0]!)) as [string]
    await rm(victim)

    const result = await a.scrub()
    expect(result.objects).toBe(1)
    expect(result.bytes).toBe('still here'.length)
    expect(result.failed).toEqual([{ key: 'damaged', code: 'ERR_UNAVAILABLE', message: expect.any(String) as string }])
  })

  it('fails with ERR_ABORTED when its signal is already aborted', async () => {
    const a = await t.cluster.add('solo', [], { writeQuorum: 0 })
    await expect(a.scrub({ signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ERR_ABORTED' })
  })
})

describe('a store that fails before its commit', () => {
  it('leaves no blob behind when its source fails midway, and keeps the chunks other keys hold', async () => {
    const a = await t.cluster.add('solo', [], { writeQuorum: 0 })
    const shared = bytes(64 * 1024)
    await a.store('kept', shared)
    const before = (await ownBlobFiles(t.cluster.roots[0]!)).sort()
    const failing = (async function* () {
      yield shared
      yield bytes(200_000)
      await Promise.resolve()
      throw new Error('the client went away')
    })()
    await expect(a.store('broken', failing)).rejects.toThrow('the client went away')
    expect(await a.has('broken')).toBe(false)
    expect((await ownBlobFiles(t.cluster.roots[0]!)).sort()).toEqual(before)
  })
})

describe('dial:error', () => {
  it('tells which bootstrap address refused this node, with ERR_PEER_UNAUTHORIZED', async () => {
    await t.cluster.add('a')
    const stranger = await t.cluster.add('stranger', [], { clusterSecret: 'another secret', bootstrap: ['a:1'] })
    const [event] = (await once(stranger, 'dial:error')) as [DialErrorEvent]
    expect(event).toMatchObject({ address: 'a:1', code: 'ERR_PEER_UNAUTHORIZED', message: expect.any(String) as string })
  })
})
