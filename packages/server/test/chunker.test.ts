import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { fixedSizeChunker } from '../src/chunker.js'

async function collect(it: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = []
  for await (const c of it) out.push(Uint8Array.from(c))
  return out
}

async function* pieces(bytes: Uint8Array, cuts: number[]): AsyncGenerator<Uint8Array> {
  await Promise.resolve()
  let at = 0
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    yield bytes.subarray(at, Math.max(at, cut))
    at = Math.max(at, cut)
  }
  yield bytes.subarray(at)
}

describe('fixedSizeChunker', () => {
  it('cuts any input, however it arrives, into full chunks and one shorter tail that concatenate to the input', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 1, max: 64 }), fc.array(fc.nat(300), { maxLength: 8 }), async (bytes, size, cuts) => {
        const chunks = await collect(fixedSizeChunker(size).chunks(pieces(bytes, cuts.map((c) => Math.min(c, bytes.length)))))
        expect(Buffer.concat(chunks)).toEqual(Buffer.from(bytes))
        chunks.slice(0, -1).forEach((c) => expect(c.length).toBe(size))
        if (chunks.length > 0) expect(chunks.at(-1)!.length).toBeGreaterThan(0)
        expect(chunks.length).toBe(Math.ceil(bytes.length / size))
      }),
    )
  })

  it('yields buffers the caller owns: later input does not overwrite earlier chunks', async () => {
    const chunks: Uint8Array[] = []
    for await (const c of fixedSizeChunker(4).chunks(pieces(Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]), [2, 5]))) chunks.push(c)
    expect(chunks.map((c) => [...c])).toEqual([[1, 2, 3, 4], [5, 6, 7, 8], [9]])
  })

  it('hands out a short last chunk in memory of its own size, and keeps nothing a caller holds for the next input', async () => {
    const size = 64 * 1024
    const chunker = fixedSizeChunker(size)
    const first: Uint8Array[] = []
    for await (const c of chunker.chunks(pieces(new Uint8Array(10_000).fill(1), [10, 5000]))) first.push(c)
    expect(first).toHaveLength(1)
    expect(first[0]!.buffer.byteLength).toBeLessThan(size)
    // The next inputs are staged in the buffer the first one used: what the caller holds stays as it was.
    for await (const c of chunker.chunks(pieces(new Uint8Array(2 * size + 100).fill(2), [300, size + 7]))) expect(c.every((b) => b === 2)).toBe(true)
    for await (const c of chunker.chunks(pieces(new Uint8Array(6000).fill(3), [7]))) expect(c.every((b) => b === 3) && c.length === 6000).toBe(true)
    expect(first[0]!.every((b) => b === 1)).toBe(true)
  })

  it('rejects a chunk size that is not a positive integer', () => {
    expect(() => fixedSizeChunker(0)).toThrow(RangeError)
    expect(() => fixedSizeChunker(1.5)).toThrow(RangeError)
  })
})
