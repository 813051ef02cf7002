import { createHash, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { createChecksum, crc32, crc32Portable, crc32c } from '../src/checksum.js'

const check = Buffer.from('123456789')

describe('checksums', () => {
  it('match the standard check values of CRC-32 and CRC-32C', () => {
    expect(crc32(check)).toBe(0xcbf43926)
    expect(crc32Portable(check)).toBe(0xcbf43926)
    expect(crc32c(check)).toBe(0xe3069283)
    // RFC 3720 (iSCSI) vectors of CRC-32C: 32 zero bytes, 32 bytes 0xff, 0..31.
    expect(crc32c(Buffer.alloc(32, 0))).toBe(0x8a9136aa)
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43)
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i)))).toBe(0x46dd794e)
    expect(crc32c(Buffer.alloc(0))).toBe(0)
  })

  it('give the same value however the bytes are split', () => {
    const data = randomBytes(100_003)
    for (const [fn, whole] of [
      [crc32Portable, crc32Portable(data)],
      [crc32c, crc32c(data)],
    ] as const) {
      let crc = 0
      for (let i = 0; i < data.length; i += 777) crc = fn(data.subarray(i, i + 777), crc)
      expect(crc).toBe(whole)
    }
    expect(crc32Portable(data)).toBe(crc32(data))
  })

  it('write digests as S3 does: base64 of the big-endian bytes', () => {
    const c = createChecksum('crc32c')
    c.update(check)
    expect(c.digest()).toBe(Buffer.from('e3069283', 'hex').toString('base64'))
    const s = createChecksum('sha256')
    s.update(check)
    expect(s.digest()).toBe(createHash('sha256').update(check).digest('base64'))
  })
})
