// Header limits: a hostile header (many stanzas, or no end) fails fast, before any key is tried.
import { randomBytes } from 'node:crypto'
import { beforeAll, describe, expect, it } from 'vitest'
import {
  decrypt,
  decryptBytes,
  decryptBytesWithPassphrase,
  DEFAULT_MAX_HEADER_BYTES,
  DEFAULT_MAX_STANZAS,
  encryptBytes,
  encryptBytesWithPassphrase,
  generateIdentity,
  identityToRecipient,
} from '../src/index.js'
import { failureCode, splitFile } from './helpers.js'

let identity: string
let recipient: string
beforeAll(async () => {
  identity = await generateIdentity()
  recipient = await identityToRecipient(identity)
})

/** A well-formed X25519 stanza with a random share and body: costs one X25519 operation per identity to try. */
function x25519Stanza(): string {
  return `-> X25519 ${randomBytes(32).toString('base64').replace(/=+$/, '')}\n${randomBytes(32).toString('base64').replace(/=+$/, '')}\n`
}

/** A header of `count` X25519 stanzas (MAC not valid), then a nonce and one payload chunk's worth of bytes. */
function hostileFile(count: number): Buffer {
  let header = 'age-encryption.org/v1\n'
  for (let i = 0; i < count; i++) header += x25519Stanza()
  header += `--- ${randomBytes(32).toString('base64').replace(/=+$/, '')}\n`
  return Buffer.concat([Buffer.from(header, 'latin1'), randomBytes(16 + 64)])
}

/** Yields `bytes` in 1 KiB pieces and records how many bytes the consumer pulled. */
function counted(bytes: Buffer): { source: Generator<Uint8Array>; pulled: () => number } {
  let pulled = 0
  function* source(): Generator<Uint8Array> {
    for (let at = 0; at < bytes.length; at += 1024) {
      const piece = bytes.subarray(at, at + 1024)
      pulled += piece.length
      yield piece
    }
  }
  return { source: source(), pulled: () => pulled }
}

describe('header limits', () => {
  it('refuses a 10,000-stanza header with ERR_TOO_MANY_STANZAS after reading only the first stanzas', async () => {
    const file = hostileFile(10_000)
    expect(file.length).toBeGreaterThan(900_000)
    const { source, pulled } = counted(file)
    expect(await failureCode(decrypt(source, [identity]))).toBe('ERR_TOO_MANY_STANZAS')
    // 65 stanzas of ~100 bytes each: the rest of the header was never read, let alone tried.
    expect(pulled()).toBeLessThan(16 * 1024)
  })

  it('refuses one stanza more than the default, and says which option bounds it', async () => {
    await expect(decryptBytes(hostileFile(DEFAULT_MAX_STANZAS + 1), [identity])).rejects.toMatchObject({
      code: 'ERR_TOO_MANY_STANZAS',
      name: 'TooManyStanzasError',
      message: expect.stringContaining('maxStanzas') as unknown,
    })
  })

  it('tries a header of exactly maxStanzas stanzas (and finds no match)', async () => {
    await expect(decryptBytes(hostileFile(DEFAULT_MAX_STANZAS), [identity])).rejects.toMatchObject({ code: 'ERR_NO_MATCHING_IDENTITY' })
  })

  it('honours a lower maxStanzas: a file to three recipients opens with 3 and fails with 2', async () => {
    const others = await Promise.all([generateIdentity(), generateIdentity()])
    const recipients = [recipient, ...(await Promise.all(others.map((i) => identityToRecipient(i))))]
    const file = await encryptBytes('three recipients', recipients)
    expect(Buffer.from(await decryptBytes(file, [identity], { maxStanzas: 3 })).toString()).toBe('three recipients')
    await expect(decryptBytes(file, [identity], { maxStanzas: 2 })).rejects.toMatchObject({ code: 'ERR_TOO_MANY_STANZAS' })
  })

  it('applies to armored files too', async () => {
    const file = await encryptBytes('armored', [recipient, recipient], { armor: true })
    await expect(decryptBytes(file, [identity], { maxStanzas: 1 })).rejects.toMatchObject({ code: 'ERR_TOO_MANY_STANZAS' })
  })

  it('refuses a header longer than maxHeaderBytes with ERR_HEADER_TOO_LARGE', async () => {
    const file = await encryptBytes('small header', [recipient, recipient, recipient])
    const { header } = splitFile(file)
    await expect(decryptBytes(file, [identity], { maxHeaderBytes: header.length - 1 })).rejects.toMatchObject({
      code: 'ERR_HEADER_TOO_LARGE',
    })
    expect(Buffer.from(await decryptBytes(file, [identity], { maxHeaderBytes: header.length + 1 })).toString()).toBe('small header')
  })

  it('refuses a header with no end once the default bound is passed', async () => {
    const endless = Buffer.concat([Buffer.from('age-encryption.org/v1\n-> X25519 '), Buffer.alloc(DEFAULT_MAX_HEADER_BYTES + 10, 0x41)])
    expect(await failureCode(decrypt(endless, [identity]))).toBe('ERR_HEADER_TOO_LARGE')
  })

  it('bounds passphrase decryption the same way', async () => {
    const file = await encryptBytesWithPassphrase('secret', 'correct horse', { workFactor: 2 })
    await expect(decryptBytesWithPassphrase(hostileFile(DEFAULT_MAX_STANZAS + 1), 'correct horse')).rejects.toMatchObject({
      code: 'ERR_TOO_MANY_STANZAS',
    })
    await expect(decryptBytesWithPassphrase(file, 'correct horse', { maxHeaderBytes: 64 })).rejects.toMatchObject({
      code: 'ERR_HEADER_TOO_LARGE',
    })
  })

  it('rejects limits out of range with ERR_INVALID_ARGUMENT before reading the input', async () => {
    for (const options of [{ maxStanzas: 0 }, { maxStanzas: 1.5 }, { maxStanzas: 70_000 }, { maxHeaderBytes: 10 }, { maxHeaderBytes: Number.NaN }]) {
      await expect(decryptBytes(new Uint8Array(0), [identity], options), JSON.stringify(options)).rejects.toMatchObject({
        code: 'ERR_INVALID_ARGUMENT',
      })
    }
  })
})
