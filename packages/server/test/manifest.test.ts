import { describe, expect, it } from 'vitest'
import { chunksInRange, decodeManifest, encodeManifest, type Manifest } from '../src/manifest.js'

const id = (c: string) => c.repeat(64)
const manifest: Manifest = {
  key: 'item_0',
  size: 25,
  sha256: id('a'),
  version: 3,
  createdAt: 1700000000000,
  recipients: ['age1example'],
  chunks: [
    { plainId: id('1'), cipherId: id('2'), size: 10 },
    { plainId: id('3'), cipherId: id('4'), size: 10 },
    { plainId: id('5'), cipherId: id('6'), size: 5 },
  ],
}

describe('manifest', () => {
  it('round-trips and encodes canonically whatever the field order of its input', () => {
    const shuffled = { chunks: manifest.chunks.map((c) => ({ size: c.size, cipherId: c.cipherId, plainId: c.plainId })), createdAt: manifest.createdAt, recipients: ['age1example'], version: 3, sha256: manifest.sha256, size: 25, key: 'item_0' }
    expect(encodeManifest(shuffled)).toEqual(encodeManifest(manifest))
    expect(decodeManifest(encodeManifest(manifest))).toEqual(manifest)
  })

  it('rejects manifests whose chunks do not add up, malformed ids, or another format, with ERR_PEER', () => {
    const bad = (m: object) => () => decodeManifest(Buffer.from(JSON.stringify(m)))
    const base = JSON.parse(encodeManifest(manifest).toString()) as Record<string, unknown>
    expect(bad({ ...base, size: 26 })).toThrow(expect.objectContaining({ code: 'ERR_PEER' }))
    expect(bad({ ...base, chunks: [{ plainId: 'x', cipherId: id('2'), size: 25 }] })).toThrow(expect.objectContaining({ code: 'ERR_PEER' }))
    expect(bad({ ...base, format: 'other' })).toThrow(expect.objectContaining({ code: 'ERR_PEER' }))
    expect(() => decodeManifest(Buffer.from('not json'))).toThrow(expect.objectContaining({ code: 'ERR_PEER' }))
  })

  it('finds the chunks and cut points of a byte range', () => {
    expect(chunksInRange(manifest.chunks, 0, 25).map((r) => [r.start, r.end])).toEqual([[0, 10], [0, 10], [0, 5]])
    expect(chunksInRange(manifest.chunks, 8, 4).map((r) => [r.chunk.plainId[0], r.start, r.end])).toEqual([['1', 8, 10], ['3', 0, 2]])
    expect(chunksInRange(manifest.chunks, 20, 5).map((r) => [r.chunk.plainId[0], r.start, r.end])).toEqual([['5', 0, 5]])
    expect(chunksInRange(manifest.chunks, 25, 0)).toEqual([])
  })
})
