// The HMAC-built HKDF gives exactly what node:crypto's hkdfSync gives.
import fc from 'fast-check'
import { hkdfSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { hkdfSha256 } from '../src/hkdf.js'

describe('hkdfSha256', () => {
  it('equals hkdfSync for any key, salt (empty included), info and length', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 80 }),
        fc.uint8Array({ maxLength: 100 }),
        fc.string({ maxLength: 40 }).map((s) => s.replace(/[^\x20-\x7e]/g, '')),
        fc.integer({ min: 1, max: 200 }),
        (ikm, salt, info, length) => {
          const expected = Buffer.from(hkdfSync('sha256', ikm, salt, info, length))
          expect(hkdfSha256(ikm, salt, info, length).equals(expected)).toBe(true)
        },
      ),
      { numRuns: 300 },
    )
  })
})
