// fast-check properties of the payload: round trips, bit flips, truncation, chunk order.
import fc from 'fast-check'
import { beforeAll, describe, expect, it } from 'vitest'
import { CRYPTO_ERROR_CODES, decrypt, encrypt, encryptBytes, generateIdentity, identityToRecipient } from '../src/index.js'
import { CHUNK, ENCRYPTED_CHUNK, collect, failureCode, outcome, pieces, splitFile, testBytes } from './helpers.js'

let identity: string
let recipient: string
beforeAll(async () => {
  identity = await generateIdentity()
  recipient = await identityToRecipient(identity)
})

/** Decrypts, returning the released plaintext and the failure code. */
const attempt = (file: Uint8Array): ReturnType<typeof outcome> => outcome(decrypt(file, [identity]))

// Sizes around the chunk boundaries are the interesting ones; plus anything up to 3 chunks.
const size = fc.oneof(
  fc.integer({ min: 0, max: 3 * CHUNK + 100 }),
  fc.constantFrom(0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 1),
)
const chunking = fc.array(fc.integer({ min: 1, max: 2 * ENCRYPTED_CHUNK }), { minLength: 1, maxLength: 8 })

describe('properties', () => {
  it('round-trips any size through any chunking of the plaintext and of the ciphertext', async () => {
    await fc.assert(
      fc.asyncProperty(size, chunking, chunking, fc.integer(), async (n, inCuts, outCuts, seed) => {
        const plaintext = testBytes(n, seed)
        const ciphertext = await collect(encrypt(pieces(plaintext, inCuts), [recipient]))
        const back = await collect(decrypt(pieces(ciphertext, outCuts), [identity]))
        expect(back.equals(plaintext)).toBe(true)
      }),
      { numRuns: 40 },
    )
  })

  it('round-trips through single-byte pieces', async () => {
    const plaintext = testBytes(CHUNK + 3)
    const ciphertext = await collect(encrypt(pieces(plaintext, [1]), [recipient]))
    expect((await collect(decrypt(pieces(ciphertext, [1]), [identity]))).equals(plaintext)).toBe(true)
  })

  it('rejects every single flipped bit of a small file, releasing nothing', async () => {
    const file = await encryptBytes(testBytes(100), [recipient])
    for (let bit = 0; bit < file.length * 8; bit++) {
      const bad = Buffer.from(file)
      bad[bit >> 3]! ^= 1 << (bit & 7)
      const { code, released } = await attempt(bad)
      expect(CRYPTO_ERROR_CODES, `bit ${bit}`).toContain(code)
      expect(released.length, `bit ${bit}`).toBe(0)
    }
  }, 60_000)

  it('rejects a flipped bit anywhere in a multi-chunk file, releasing only the chunks before it', async () => {
    const plaintext = testBytes(2 * CHUNK + 5000)
    const file = await encryptBytes(plaintext, [recipient])
    const payloadStart = splitFile(file).header.length + 16
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: file.length * 8 - 1 }), async (bit) => {
        const bad = Buffer.from(file)
        bad[bit >> 3]! ^= 1 << (bit & 7)
        const { code, released } = await attempt(bad)
        expect(CRYPTO_ERROR_CODES).toContain(code)
        const byte = bit >> 3
        const chunksBefore = byte < payloadStart ? 0 : Math.floor((byte - payloadStart) / ENCRYPTED_CHUNK)
        expect(released.equals(plaintext.subarray(0, chunksBefore * CHUNK))).toBe(true)
      }),
      { numRuns: 150 },
    )
  })

  it('fails with ERR_TRUNCATED when cut at any chunk boundary, after releasing the chunks before the cut', async () => {
    const plaintext = testBytes(3 * CHUNK)
    const file = await encryptBytes(plaintext, [recipient])
    const { header, chunks } = splitFile(file)
    expect(chunks.length).toBe(3)
    const payloadStart = header.length + 16
    for (let k = 0; k < chunks.length; k++) {
      const { code, released } = await attempt(file.subarray(0, payloadStart + k * ENCRYPTED_CHUNK))
      expect(code, `cut after ${k} chunks`).toBe('ERR_TRUNCATED')
      expect(released.equals(plaintext.subarray(0, k * CHUNK))).toBe(true)
    }
  })

  it('fails with ERR_TRUNCATED when cut inside the header or the payload nonce', async () => {
    const file = await encryptBytes(testBytes(10), [recipient])
    const { header } = splitFile(file)
    for (let cut = 0; cut < header.length + 16; cut++) {
      expect(await failureCode(decrypt(file.subarray(0, cut), [identity])), `cut at ${cut}`).toBe('ERR_TRUNCATED')
    }
  })

  it('never ends cleanly when cut anywhere before the end', async () => {
    const file = await encryptBytes(testBytes(CHUNK + 1000), [recipient])
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: file.length - 1 }), async (cut) => {
        const { code } = await attempt(file.subarray(0, cut))
        expect(['ERR_TRUNCATED', 'ERR_CHUNK_AUTH', 'ERR_FORMAT']).toContain(code)
      }),
      { numRuns: 100 },
    )
  })

  it('fails with ERR_CHUNK_AUTH when chunks are swapped, dropped or duplicated', async () => {
    const file = await encryptBytes(testBytes(4 * CHUNK + 10), [recipient])
    const { header, nonce, chunks } = splitFile(file)
    const rebuild = (order: number[]): Buffer => Buffer.concat([header, nonce, ...order.map((i) => chunks[i]!)])
    expect(await failureCode(decrypt(rebuild([0, 2, 1, 3, 4]), [identity]))).toBe('ERR_CHUNK_AUTH')
    expect(await failureCode(decrypt(rebuild([0, 1, 3, 4]), [identity]))).toBe('ERR_CHUNK_AUTH')
    expect(await failureCode(decrypt(rebuild([0, 1, 1, 2, 3, 4]), [identity]))).toBe('ERR_CHUNK_AUTH')
    expect(await failureCode(decrypt(rebuild([0, 1, 2, 3, 4]), [identity]))).toBe('ok')
  })
})
