// In-memory blobs: encryptBlob / decryptBlob (content address computed on the way) and the
// direct sealing path behind encryptBytes, which must give exactly the bytes of the stream.
import * as age from 'age-encryption'
import { createHash } from 'node:crypto'
import { beforeAll, describe, expect, it } from 'vitest'
import {
  decrypt,
  decryptBlob,
  decryptBytes,
  encrypt,
  encryptBlob,
  encryptBlobPieces,
  encryptBytes,
  generateIdentity,
  identityToRecipient,
  type EncryptOptions,
} from '../src/index.js'
import { CHUNK, collect, pieces, splitFile, testBytes } from './helpers.js'

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')
const seedOf = (text: string): Buffer => createHash('sha256').update(text).digest()

/** Sizes around the 64 KiB chunk: empty, one byte, exact multiples and one byte either side. */
const SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 17]

let identities: string[]
let recipients: string[]
beforeAll(async () => {
  identities = await Promise.all([generateIdentity(), generateIdentity()])
  recipients = await Promise.all(identities.map((id) => identityToRecipient(id)))
})

describe('encryptBytes (sealed straight into one array)', () => {
  for (const size of SIZES) {
    it(`gives the bytes of the stream for ${size} bytes with a seed`, async () => {
      const plaintext = testBytes(size, 2)
      const seed = seedOf(`stream ${size}`)
      const whole = await encryptBytes(plaintext, recipients, { seed })
      const streamed = await collect(encrypt(pieces(plaintext, [7, 65_536, 1000]), recipients, { seed }))
      expect(Buffer.from(whole).equals(streamed)).toBe(true)
      expect(Buffer.from(await decryptBytes(whole, [identities[0]!])).equals(plaintext)).toBe(true)
    })
  }

  it('marks only the chunk that reaches the end as last, also for an exact multiple of 64 KiB', async () => {
    // age readers reject a file whose final chunk is not marked last, and an empty last chunk after a full one.
    for (const size of [CHUNK, 2 * CHUNK]) {
      const file = await encryptBytes(testBytes(size, 4), recipients)
      expect(splitFile(file).chunks.map((c) => c.length)).toEqual(Array.from({ length: size / CHUNK }, () => CHUNK + 16))
      const d = new age.Decrypter()
      d.addIdentity(identities[1]!)
      expect(Buffer.from(await d.decrypt(file)).equals(testBytes(size, 4))).toBe(true)
    }
  })

  it('keeps the ciphertext of existing replicas: pinned hashes of files written before this path existed', async () => {
    // Computed with the streaming implementation that wrote every replica so far: a cipherId must never change.
    const identity = 'AGE-SECRET-KEY-196L3LFNRQG8G6L2NU0X05AVCR7PACR3X36RLAFYT25YLRTEE03WQ8EUZXV'
    const recipient = await identityToRecipient(identity)
    expect(recipient).toBe('age1adf35c7r3wmpwksx7ghlwv8zzg8p9nu9yzt0nsq2q6xltzmwnyuql66za6')
    const pinned: Array<[number, string]> = [
      [0, 'ede4604383ee5101cdb8e2ffe92078e314906bcc5946f23e0428baac04865023'],
      [1, '3df0568e2b24c42edd3782b30be80ccf7dea605b7d9e3ea7e23d1ea9ae3dd69e'],
      [65535, '74031b31149789e47d1616029d1302a39d73debc4d50daeca5c2c23a97ffa417'],
      [65536, '236cac66b9ebe0f11e0be8a1b2f1f108835a3248529b86fd5d1faee18c42286b'],
      [65537, 'f74f69e3908c83faa26b9fe6e0446b987da61cc3de2d94d8ae63313379e010a8'],
      [131072, 'ccc4aef29aa66c180099885f7d37cc424c649cd4bae0d0ff605fdf25384a1b1c'],
      [196625, 'bc048c130c7ff97f242653d0dac3497150046ae7ef234737b21310d3b4c775a5'],
    ]
    for (const [size, expected] of pinned) {
      const seed = createHash('sha256').update(`pinned cipherId ${size}`).digest()
      const plaintext = testBytes(size, 3)
      expect(sha256(await encryptBytes(plaintext, [recipient], { seed })), `${size} bytes`).toBe(expected)
      expect((await encryptBlob(plaintext, [recipient], { seed })).sha256, `${size} bytes`).toBe(expected)
    }
  })

  it('writes a new array for every call: results never share memory', async () => {
    const seed = seedOf('own')
    const a = await encryptBytes(testBytes(100, 5), recipients, { seed })
    const b = await encryptBytes(testBytes(100, 5), recipients, { seed })
    a[a.length - 1] = a[a.length - 1]! ^ 1
    expect(sha256(b)).toBe(sha256(await encryptBytes(testBytes(100, 5), recipients, { seed })))
  })
})

describe('encryptBlobPieces', () => {
  for (const size of SIZES) {
    it(`returns the file of encryptBlob, in pieces, and its SHA-256 for ${size} bytes`, async () => {
      const plaintext = testBytes(size, 7)
      const seed = seedOf(`pieces ${size}`)
      const { pieces: parts, size: total, sha256: id } = await encryptBlobPieces(plaintext, recipients, { seed })
      const whole = await encryptBlob(plaintext, recipients, { seed })
      expect(Buffer.concat(parts).equals(whole.ciphertext)).toBe(true)
      expect(total).toBe(whole.ciphertext.length)
      expect(id).toBe(whole.sha256)
      expect(Buffer.from(await decryptBytes(parts, [identities[0]!])).equals(plaintext)).toBe(true)
      // One piece for the header, then a ciphertext and a tag per chunk (an empty plaintext is one empty last chunk: its tag alone).
      expect(parts.length).toBe(1 + (size === 0 ? 1 : 2 * Math.ceil(size / CHUNK)))
    })
  }

  it('refuses armor and a bad recipient with typed errors', async () => {
    await expect(encryptBlobPieces('x', recipients, { armor: true } as EncryptOptions)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    await expect(encryptBlobPieces('x', ['age1nope'])).rejects.toMatchObject({ code: 'ERR_INVALID_RECIPIENT' })
  })
})

describe('encryptBlob', () => {
  for (const size of SIZES) {
    it(`returns the file of encryptBytes and its SHA-256 for ${size} bytes`, async () => {
      const plaintext = testBytes(size, 6)
      const seed = seedOf(`blob ${size}`)
      const { ciphertext, sha256: id } = await encryptBlob(plaintext, recipients, { seed })
      expect(id).toBe(sha256(ciphertext))
      expect(Buffer.from(ciphertext).equals(await encryptBytes(plaintext, recipients, { seed }))).toBe(true)
    })
  }

  it('encrypts a string as its UTF-8 bytes', async () => {
    const { ciphertext } = await encryptBlob('grüße', recipients)
    expect(Buffer.from(await decryptBytes(ciphertext, [identities[1]!])).toString('utf8')).toBe('grüße')
  })

  it('is randomized without a seed, and each hash matches its own file', async () => {
    const a = await encryptBlob('same', recipients)
    const b = await encryptBlob('same', recipients)
    expect(a.sha256).not.toBe(b.sha256)
    expect([sha256(a.ciphertext), sha256(b.ciphertext)]).toEqual([a.sha256, b.sha256])
  })

  it('refuses armor, a bad recipient, a bad seed and a non-byte plaintext with typed errors', async () => {
    await expect(encryptBlob('x', recipients, { armor: true } as EncryptOptions)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    await expect(encryptBlob('x', ['age1nope'])).rejects.toMatchObject({ code: 'ERR_INVALID_RECIPIENT' })
    await expect(encryptBlob('x', [])).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    await expect(encryptBlob('x', recipients, { seed: new Uint8Array(31) })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    await expect(encryptBlob(42 as unknown as Uint8Array, recipients)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
  })

  it('fails with ERR_ABORTED, its cause the reason, when the signal is already aborted', async () => {
    const reason = new Error('stop')
    await expect(encryptBlob(testBytes(10), recipients, { signal: AbortSignal.abort(reason) })).rejects.toMatchObject({ code: 'ERR_ABORTED', cause: reason })
  })
})

describe('decryptBlob and decryptBytes from pieces', () => {
  for (const size of SIZES) {
    it(`returns the plaintext and its SHA-256 for ${size} bytes, from one array or from pieces`, async () => {
      const plaintext = testBytes(size, 7)
      const file = await encryptBytes(plaintext, recipients)
      for (const input of [file, [...pieces(file, [1, 16_384, 65_552, 3])]]) {
        const { plaintext: out, sha256: id } = await decryptBlob(input, [identities[1]!])
        expect(Buffer.from(out).equals(plaintext)).toBe(true)
        expect(id).toBe(sha256(plaintext))
        expect(Buffer.from(await decryptBytes(input, [identities[0]!])).equals(plaintext)).toBe(true)
      }
    })
  }

  it('decrypts an armored file given as a string', async () => {
    const armored = Buffer.from(await encryptBytes(testBytes(CHUNK + 3, 8), recipients, { armor: true })).toString('latin1')
    const { plaintext, sha256: id } = await decryptBlob(armored, [identities[0]!])
    expect(id).toBe(sha256(testBytes(CHUNK + 3, 8)))
    expect(plaintext.length).toBe(CHUNK + 3)
  })

  it('fails with ERR_CHUNK_AUTH on a damaged chunk, returning nothing', async () => {
    const file = Buffer.from(await encryptBytes(testBytes(3 * CHUNK, 9), recipients))
    file[file.length - CHUNK] = file[file.length - CHUNK]! ^ 1
    await expect(decryptBlob(file, [identities[0]!])).rejects.toMatchObject({ code: 'ERR_CHUNK_AUTH' })
    await expect(decryptBytes([file.subarray(0, 10), file.subarray(10)], [identities[0]!])).rejects.toMatchObject({ code: 'ERR_CHUNK_AUTH' })
  })

  it('fails with ERR_TRUNCATED on a file cut at a chunk boundary', async () => {
    const file = await encryptBytes(testBytes(2 * CHUNK + 5, 10), recipients)
    const { header, nonce } = splitFile(file)
    const cut = file.subarray(0, header.length + nonce.length + CHUNK + 16)
    await expect(decryptBlob(cut, [identities[0]!])).rejects.toMatchObject({ code: 'ERR_TRUNCATED' })
  })

  it('refuses pieces that are not bytes, and a wrong identity, with typed errors', async () => {
    const file = await encryptBytes('x', recipients)
    await expect(decryptBlob([file, 'y'] as unknown as Uint8Array[], [identities[0]!])).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    await expect(decryptBlob(file, [await generateIdentity()])).rejects.toMatchObject({ code: 'ERR_NO_MATCHING_IDENTITY' })
  })

  it('fails with ERR_ABORTED, its cause the reason, when the signal is already aborted', async () => {
    const file = await encryptBytes(testBytes(2 * CHUNK, 12), recipients)
    const reason = new Error('stop')
    await expect(decryptBlob(file, [identities[0]!], { signal: AbortSignal.abort(reason) })).rejects.toMatchObject({ code: 'ERR_ABORTED', cause: reason })
    await expect(decryptBytes([file], [identities[0]!], { signal: AbortSignal.abort(reason) })).rejects.toMatchObject({ code: 'ERR_ABORTED', cause: reason })
  })

  it('decrypts what the stream encrypted, and the stream decrypts what encryptBlob wrote', async () => {
    const plaintext = testBytes(2 * CHUNK + 99, 11)
    const streamed = await collect(encrypt(plaintext, recipients))
    expect((await decryptBlob(streamed, [identities[1]!])).sha256).toBe(sha256(plaintext))
    const { ciphertext } = await encryptBlob(plaintext, recipients)
    expect((await collect(decrypt(ciphertext, [identities[0]!]))).equals(plaintext)).toBe(true)
  })
})
