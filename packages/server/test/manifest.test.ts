import { createHmac } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { chunksInRange, decodeManifest, encodeManifest, MANIFEST_FORMAT_V1, paddedSize, type Manifest } from '../src/manifest.js'

const id = (c: string) => c.repeat(64)
const macKey = Buffer.alloc(32, 7)
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
  metadata: { 'content-type': 'text/plain', 'x-amz-meta-a': 'b' },
}

describe('manifest', () => {
  it('round-trips and encodes canonically whatever the field order of its input', () => {
    const shuffled = { metadata: { 'x-amz-meta-a': 'b', 'content-type': 'text/plain' }, chunks: manifest.chunks.map((c) => ({ size: c.size, cipherId: c.cipherId, plainId: c.plainId })), createdAt: manifest.createdAt, recipients: ['age1example'], version: 3, sha256: manifest.sha256, size: 25, key: 'item_0' }
    expect(encodeManifest(shuffled, macKey)).toEqual(encodeManifest(manifest, macKey))
    expect(decodeManifest(encodeManifest(manifest, macKey), macKey)).toEqual({ manifest, authenticated: true })
  })

  it('pads to a size bucket, so the length tells little of the key or the metadata', () => {
    const short = encodeManifest({ ...manifest, key: 'k', metadata: {} }, macKey)
    const long = encodeManifest({ ...manifest, key: 'k'.repeat(60), metadata: { 'x-amz-meta-note': 'n'.repeat(60) } }, macKey)
    expect(short.length).toBe(1024)
    expect(long.length).toBe(1024)
    expect(paddedSize(1025)).toBe(2048)
    expect(paddedSize(3 << 20)).toBe(3 << 20)
    expect(encodeManifest({ ...manifest, key: 'k'.repeat(1000) }, macKey).length).toBe(2048)
  })

  it('refuses a manifest whose MAC was made under another key, or that was changed after its MAC, with ERR_UNAUTHENTICATED', () => {
    const bytes = encodeManifest(manifest, macKey)
    expect(() => decodeManifest(bytes, Buffer.alloc(32, 8))).toThrow(expect.objectContaining({ code: 'ERR_UNAUTHENTICATED' }))
    const changed = Buffer.from(bytes.toString().replace('"version":3', '"version":4'))
    expect(() => decodeManifest(changed, macKey)).toThrow(expect.objectContaining({ code: 'ERR_UNAUTHENTICATED' }))
    const stripped = Buffer.from(bytes.toString().replace(/,"mac":"[0-9a-f]{64}"\}$/, '}'))
    expect(() => decodeManifest(stripped, macKey)).toThrow(expect.objectContaining({ code: 'ERR_UNAUTHENTICATED' }))
  })

  it('reads a manifest written before manifests carried a MAC, as unauthenticated', () => {
    const v1 = { format: MANIFEST_FORMAT_V1, key: manifest.key, size: 25, sha256: manifest.sha256, version: 3, createdAt: manifest.createdAt, recipients: manifest.recipients, chunks: manifest.chunks }
    expect(decodeManifest(Buffer.from(JSON.stringify(v1)), macKey)).toEqual({ manifest: { ...manifest, metadata: {} }, authenticated: false })
  })

  it('rejects manifests whose chunks do not add up, malformed ids, or another format, with ERR_PEER', () => {
    // Made with the right MAC, so that only the fields are wrong.
    const signed = (m: Record<string, unknown>) => {
      const body = JSON.stringify(m)
      return Buffer.from(`${body.slice(0, -1)},"mac":"${createHmac('sha256', macKey).update(body).digest('hex')}"}`)
    }
    const bad = (m: Record<string, unknown>) => () => decodeManifest(signed(m), macKey)
    const base = JSON.parse(encodeManifest(manifest, macKey).toString()) as Record<string, unknown>
    delete base.mac
    expect(() => decodeManifest(signed(base), macKey)).not.toThrow()
    expect(bad({ ...base, size: 26 })).toThrow(expect.objectContaining({ code: 'ERR_PEER' }))
    expect(bad({ ...base, chunks: [{ plainId: 'x', cipherId: id('2'), size: 25 }] })).toThrow(expect.objectContaining({ code: 'ERR_PEER' }))
    expect(bad({ ...base, metadata: { Upper: 'x' } })).toThrow(expect.objectContaining({ code: 'ERR_PEER' }))
    expect(bad({ ...base, format: 'other' })).toThrow(expect.objectContaining({ code: 'ERR_PEER' }))
    expect(() => decodeManifest(Buffer.from('not json'), macKey)).toThrow(expect.objectContaining({ code: 'ERR_PEER' }))
  })

  it('finds the chunks and cut points of a byte range', () => {
    expect(chunksInRange(manifest.chunks, 0, 25).map((r) => [r.start, r.end])).toEqual([[0, 10], [0, 10], [0, 5]])
    expect(chunksInRange(manifest.chunks, 8, 4).map((r) => [r.chunk.plainId[0], r.start, r.end])).toEqual([['1', 8, 10], ['3', 0, 2]])
    expect(chunksInRange(manifest.chunks, 20, 5).map((r) => [r.chunk.plainId[0], r.start, r.end])).toEqual([['5', 0, 5]])
    expect(chunksInRange(manifest.chunks, 25, 0)).toEqual([])
  })
})
