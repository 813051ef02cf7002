import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { encodeHeader, MAX_HEADER_BYTES, StreamReader } from '../src/wire.js'

async function* split(bytes: Uint8Array, cuts: number[]): AsyncGenerator<Uint8Array> {
  await Promise.resolve()
  let at = 0
  for (const cut of [...new Set(cuts)].sort((a, b) => a - b)) {
    if (cut <= at || cut >= bytes.length) continue
    yield bytes.subarray(at, cut)
    at = cut
  }
  yield bytes.subarray(at)
}

const codeOf = async (p: Promise<unknown>): Promise<string | undefined> =>
  p.then(
    () => undefined,
    (err: { code?: string }) => err.code,
  )

describe('StreamReader', () => {
  it('reads a header then an exact body however the bytes are split', async () => {
    await fc.assert(
      fc.asyncProperty(fc.dictionary(fc.string(), fc.integer()), fc.uint8Array({ maxLength: 200 }), fc.array(fc.nat(400)), async (header, body, cuts) => {
        const wire = Buffer.concat([encodeHeader(header), body])
        const reader = new StreamReader(split(wire, cuts))
        expect(await reader.readHeader()).toEqual(header)
        const got: Uint8Array[] = []
        for await (const piece of reader.body(body.length)) got.push(piece)
        expect(Buffer.concat(got)).toEqual(Buffer.from(body))
      }),
    )
  })

  it('fails with ERR_PEER on a short body, trailing bytes, an oversized or non-JSON header', async () => {
    const header = encodeHeader({ op: 'x' })
    const drain = async (r: StreamReader, n: number) => {
      await r.readHeader()
      for await (const _ of r.body(n));
    }
    expect(await codeOf(drain(new StreamReader(split(Buffer.concat([header, Buffer.alloc(3)]), [])), 4))).toBe('ERR_PEER')
    expect(await codeOf(drain(new StreamReader(split(Buffer.concat([header, Buffer.alloc(5)]), [])), 4))).toBe('ERR_PEER')
    const huge = Buffer.alloc(4)
    huge.writeUInt32BE(MAX_HEADER_BYTES + 1)
    expect(await codeOf(new StreamReader(split(huge, [])).readHeader())).toBe('ERR_PEER')
    const garbage = Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from('{{{')])
    expect(await codeOf(new StreamReader(split(garbage, [])).readHeader())).toBe('ERR_PEER')
    const array = Buffer.concat([Buffer.from([0, 0, 0, 2]), Buffer.from('[]')])
    expect(await codeOf(new StreamReader(split(array, [])).readHeader())).toBe('ERR_PEER')
  })

  it('reports a clean end before a header as undefined, and an end inside one as ERR_PEER', async () => {
    expect(await new StreamReader(split(new Uint8Array(0), [])).readHeader()).toBeUndefined()
    expect(await codeOf(new StreamReader(split(encodeHeader({ a: 1 }).subarray(0, 6), [])).readHeader())).toBe('ERR_PEER')
  })
})
