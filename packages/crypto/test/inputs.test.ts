// Bad arguments and bad keys: each a typed error, thrown by the iteration, never by the call.
import { createCipheriv, hkdfSync } from 'node:crypto'
import { beforeAll, describe, expect, it } from 'vitest'
import {
  assertRecipient,
  decrypt,
  decryptBytes,
  decryptBytesWithPassphrase,
  encrypt,
  encryptBytes,
  encryptBytesWithPassphrase,
  generateIdentity,
  identityToRecipient,
} from '../src/index.js'
import { CHUNK, collect, failureCode, outcome, splitFile, testBytes } from './helpers.js'

let identity: string
let recipient: string
beforeAll(async () => {
  identity = await generateIdentity()
  recipient = await identityToRecipient(identity)
})

const PQ_RECIPIENT = 'age1pq1' + 'q'.repeat(60)

describe('inputs', () => {
  it('generates distinct identities whose recipients are age1 strings', async () => {
    const a = await generateIdentity()
    const b = await generateIdentity()
    expect(a).not.toBe(b)
    expect(a).toMatch(/^AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}$/)
    expect(await identityToRecipient(a)).toMatch(/^age1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{58}$/)
  })

  it('calling encrypt or decrypt never throws: errors come from the iteration', () => {
    expect(() => encrypt('x', ['not a recipient'])).not.toThrow()
    expect(() => decrypt('x', ['not an identity'])).not.toThrow()
    expect(() => encrypt('x', null as unknown as string[])).not.toThrow()
  })

  it('rejects a malformed recipient with ERR_INVALID_RECIPIENT', async () => {
    expect(await failureCode(encrypt('x', ['age1notbech32']))).toBe('ERR_INVALID_RECIPIENT')
    expect(await failureCode(encrypt('x', [recipient.slice(0, -1)]))).toBe('ERR_INVALID_RECIPIENT')
    expect(await failureCode(encrypt('x', [identity]))).toBe('ERR_INVALID_RECIPIENT')
    expect(() => assertRecipient('age1')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_RECIPIENT' }))
    expect(() => assertRecipient(recipient)).not.toThrow()
  })

  it('rejects post-quantum and SSH recipients with ERR_UNSUPPORTED', async () => {
    expect(await failureCode(encrypt('x', [PQ_RECIPIENT]))).toBe('ERR_UNSUPPORTED')
    expect(await failureCode(encrypt('x', ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA']))).toBe('ERR_UNSUPPORTED')
  })

  it('rejects an empty recipient or identity list with ERR_INVALID_ARGUMENT', async () => {
    expect(await failureCode(encrypt('x', []))).toBe('ERR_INVALID_ARGUMENT')
    expect(await failureCode(decrypt('x', []))).toBe('ERR_INVALID_ARGUMENT')
  })

  it('rejects a malformed identity with ERR_INVALID_IDENTITY, without echoing it', async () => {
    const file = await encryptBytes('x', [recipient])
    const broken = identity.slice(0, -2) + 'QQ'
    const err = await collect(decrypt(file, [broken])).catch((e: unknown) => e as Error & { code: string })
    expect(err).toMatchObject({ code: 'ERR_INVALID_IDENTITY' })
    expect((err as Error).message).not.toContain(broken.slice(16))
    await expect(identityToRecipient('AGE-SECRET-KEY-1')).rejects.toMatchObject({ code: 'ERR_INVALID_IDENTITY' })
  })

  it('fails with ERR_NO_MATCHING_IDENTITY when no identity opens the file, releasing nothing', async () => {
    const file = await encryptBytes(testBytes(100), [recipient])
    const { code, released } = await outcome(decrypt(file, [await generateIdentity(), await generateIdentity()]))
    expect(code).toBe('ERR_NO_MATCHING_IDENTITY')
    expect(released).toHaveLength(0)
  })

  it('rejects a source item that is not a Uint8Array with ERR_INVALID_ARGUMENT', async () => {
    const notBytes: unknown[] = ['text']
    expect(await failureCode(encrypt(notBytes as Iterable<Uint8Array>, [recipient]))).toBe('ERR_INVALID_ARGUMENT')
    expect(await failureCode(encrypt(42 as unknown as Uint8Array, [recipient]))).toBe('ERR_INVALID_ARGUMENT')
    await expect(encryptBytes([1, 2] as unknown as Uint8Array, [recipient])).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
  })

  it('fails with ERR_HEADER_MAC when a stanza of a valid file is replaced by another file’s', async () => {
    const a = Buffer.from(await encryptBytes('one', [recipient]))
    const b = Buffer.from(await encryptBytes('two', [recipient]))
    const stanzaOf = (f: Buffer): Buffer => f.subarray(f.indexOf('\n-> ') + 1, f.indexOf('\n--- ') + 1)
    const mixed = Buffer.concat([a.subarray(0, a.indexOf('\n-> ') + 1), stanzaOf(b), a.subarray(a.indexOf('\n--- ') + 1)])
    expect(await failureCode(decrypt(mixed, [identity]))).toBe('ERR_HEADER_MAC')
  })

  it('fails with ERR_TRAILING_DATA when bytes follow a full last chunk, after releasing the verified plaintext', async () => {
    // After a short last chunk, trailing bytes make that chunk fail to verify instead (ERR_CHUNK_AUTH).
    const plaintext = testBytes(2 * CHUNK)
    const file = Buffer.concat([await encryptBytes(plaintext, [recipient]), Buffer.from('x')])
    const { code, released } = await outcome(decrypt(file, [identity]))
    expect(code).toBe('ERR_TRAILING_DATA')
    expect(released.equals(plaintext)).toBe(true)
  })

  it('fails with ERR_EMPTY_LAST_CHUNK when a full chunk is followed by an empty last chunk', async () => {
    // A seeded file has a known file key, so its payload can be resealed here by hand.
    const seed = Buffer.alloc(32, 7)
    const plaintext = testBytes(CHUNK)
    const { header, nonce } = splitFile(await encryptBytes(plaintext, [recipient], { seed }))
    const fileKey = Buffer.from(hkdfSync('sha256', seed, 'dcas/crypto deterministic age v1', 'file key', 16))
    const key = Buffer.from(hkdfSync('sha256', fileKey, nonce, 'payload', 32))
    const seal = (index: number, last: boolean, body: Uint8Array): Buffer => {
      const chunkNonce = Buffer.alloc(12)
      chunkNonce[10] = index
      chunkNonce[11] = last ? 1 : 0
      const cipher = createCipheriv('chacha20-poly1305', key, chunkNonce, { authTagLength: 16 })
      return Buffer.concat([cipher.update(body), cipher.final(), cipher.getAuthTag()])
    }
    const file = Buffer.concat([header, nonce, seal(0, false, plaintext), seal(1, true, new Uint8Array(0))])
    const { code, released } = await outcome(decrypt(file, [identity]))
    expect(code).toBe('ERR_EMPTY_LAST_CHUNK')
    expect(released.equals(plaintext)).toBe(true)
  })

  it('encrypts an empty payload to one empty last chunk, which decrypts to nothing', async () => {
    const file = await encryptBytes(new Uint8Array(0), [recipient])
    expect(splitFile(file).chunks.map((c) => c.length)).toEqual([16])
    expect(await decryptBytes(file, [identity])).toHaveLength(0)
  })

  it('rejects a passphrase work factor out of range with ERR_INVALID_ARGUMENT', async () => {
    for (const workFactor of [0, 31, 1.5]) {
      await expect(encryptBytesWithPassphrase('x', 'pass', { workFactor })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    }
    await expect(encryptBytesWithPassphrase('x', '', { workFactor: 2 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    const file = await encryptBytesWithPassphrase('x', 'pass', { workFactor: 2 })
    await expect(decryptBytesWithPassphrase(file, 'pass', { maxWorkFactor: 0 })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
  })

  it('refuses a passphrase file above maxWorkFactor with ERR_WORK_FACTOR, before any scrypt work', async () => {
    const file = await encryptBytesWithPassphrase('x', 'pass', { workFactor: 12 })
    await expect(decryptBytesWithPassphrase(file, 'pass', { maxWorkFactor: 11 })).rejects.toMatchObject({ code: 'ERR_WORK_FACTOR' })
    expect(Buffer.from(await decryptBytesWithPassphrase(file, 'pass', { maxWorkFactor: 12 })).toString()).toBe('x')
  })

  it('fails with ERR_NO_MATCHING_IDENTITY for a wrong passphrase', async () => {
    const file = await encryptBytesWithPassphrase('x', 'pass', { workFactor: 2 })
    await expect(decryptBytesWithPassphrase(file, 'wrong')).rejects.toMatchObject({ code: 'ERR_NO_MATCHING_IDENTITY' })
  })

  it('does not decrypt a passphrase file with identities, nor an identity file with a passphrase', async () => {
    const byPassphrase = await encryptBytesWithPassphrase('x', 'pass', { workFactor: 2 })
    await expect(decryptBytes(byPassphrase, [identity])).rejects.toMatchObject({ code: 'ERR_NO_MATCHING_IDENTITY' })
    const byKey = await encryptBytes('x', [recipient])
    await expect(decryptBytesWithPassphrase(byKey, 'pass')).rejects.toMatchObject({ code: 'ERR_NO_MATCHING_IDENTITY' })
  })

  describe('when the consumer stops early', () => {
    it('closes the source of encrypt and of decrypt', async () => {
      let closed = 0
      const file = await encryptBytes(testBytes(4 * CHUNK), [recipient])
      function* source(bytes: Uint8Array): Generator<Uint8Array> {
        try {
          for (let o = 0; o < bytes.length; o += 1000) yield bytes.subarray(o, o + 1000)
        } finally {
          closed++
        }
      }
      let outputs = 0
      // The first output is the header, made before the source is read: stop after payload bytes.
      for await (const _ of encrypt(source(testBytes(4 * CHUNK)), [recipient])) if (++outputs === 2) break
      for await (const _ of decrypt(source(file), [identity])) break
      expect(closed).toBe(2)
    })
  })
})
