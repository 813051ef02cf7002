// Interoperability with the reference TypeScript implementation, `age-encryption` (typage).
import * as age from 'age-encryption'
import { describe, expect, it } from 'vitest'
import {
  decrypt,
  decryptBytes,
  decryptBytesWithPassphrase,
  encrypt,
  encryptBytes,
  encryptBytesWithPassphrase,
  generateIdentity,
  identityToRecipient,
} from '../src/index.js'
import { collect, testBytes } from './helpers.js'

const SIZES = [0, 1, 65535, 65536, 65537, 1024 * 1024 + 1]

async function theirsDecrypt(ciphertext: Uint8Array, identity: string): Promise<Uint8Array> {
  const d = new age.Decrypter()
  d.addIdentity(identity)
  return d.decrypt(ciphertext)
}

async function theirsEncrypt(plaintext: Uint8Array, recipients: string[]): Promise<Uint8Array> {
  const e = new age.Encrypter()
  for (const r of recipients) e.addRecipient(r)
  return e.encrypt(plaintext)
}

describe('interop with age-encryption', () => {
  it('derives the same recipient from an identity, both ways', async () => {
    const ours = await generateIdentity()
    const theirs = await age.generateIdentity()
    expect(await identityToRecipient(ours)).toBe(await age.identityToRecipient(ours))
    expect(await identityToRecipient(theirs)).toBe(await age.identityToRecipient(theirs))
  })

  for (const size of SIZES) {
    it(`age-encryption decrypts what we encrypt (${size} bytes)`, async () => {
      const identity = await generateIdentity()
      const plaintext = testBytes(size, size + 1)
      const ciphertext = await encryptBytes(plaintext, [await identityToRecipient(identity)])
      expect(Buffer.from(await theirsDecrypt(ciphertext, identity)).equals(plaintext)).toBe(true)
    })

    it(`we decrypt what age-encryption encrypts (${size} bytes)`, async () => {
      const identity = await age.generateIdentity()
      const plaintext = testBytes(size, size + 2)
      const ciphertext = await theirsEncrypt(plaintext, [await age.identityToRecipient(identity)])
      expect(Buffer.from(await decryptBytes(ciphertext, [identity])).equals(plaintext)).toBe(true)
    })
  }

  it('encrypts to several recipients, each of which age-encryption can decrypt with its own identity', async () => {
    const identities = await Promise.all([generateIdentity(), age.generateIdentity(), generateIdentity()])
    const recipients = await Promise.all(identities.map((id) => identityToRecipient(id)))
    const plaintext = testBytes(200_000, 7)
    const ciphertext = await encryptBytes(plaintext, recipients)
    for (const identity of identities) {
      expect(Buffer.from(await theirsDecrypt(ciphertext, identity)).equals(plaintext)).toBe(true)
    }
  })

  it('decrypts an age-encryption file made for several recipients with any one identity', async () => {
    const identities = await Promise.all([age.generateIdentity(), age.generateIdentity(), age.generateIdentity()])
    const recipients = await Promise.all(identities.map((id) => age.identityToRecipient(id)))
    const plaintext = testBytes(70_000, 8)
    const ciphertext = await theirsEncrypt(plaintext, recipients)
    for (const identity of identities) {
      expect(Buffer.from(await decryptBytes(ciphertext, [identity])).equals(plaintext)).toBe(true)
    }
  })

  it('streams a file age-encryption wrote in its own streaming mode', async () => {
    const identity = await age.generateIdentity()
    const plaintext = testBytes(300_000, 9)
    const e = new age.Encrypter()
    e.addRecipient(await age.identityToRecipient(identity))
    const stream = await e.encrypt(new Blob([plaintext]).stream())
    expect((await collect(decrypt(stream, [identity]))).equals(plaintext)).toBe(true)
  })

  it('exchanges passphrase-encrypted files both ways', async () => {
    const plaintext = testBytes(100_000, 10)
    const ours = await encryptBytesWithPassphrase(plaintext, 'correct horse', { workFactor: 10 })
    const d = new age.Decrypter()
    d.addPassphrase('correct horse')
    expect(Buffer.from(await d.decrypt(ours)).equals(plaintext)).toBe(true)

    const e = new age.Encrypter()
    e.setScryptWorkFactor(10)
    e.setPassphrase('correct horse')
    const theirs = await e.encrypt(plaintext)
    expect(Buffer.from(await decryptBytesWithPassphrase(theirs, 'correct horse')).equals(plaintext)).toBe(true)
  })

  it('exchanges ASCII-armored files both ways', async () => {
    const identity = await generateIdentity()
    const recipient = await identityToRecipient(identity)
    const plaintext = testBytes(5000, 11)
    const armored = Buffer.from(await encryptBytes(plaintext, [recipient], { armor: true })).toString('latin1')
    expect(Buffer.from(await theirsDecrypt(age.armor.decode(armored), identity)).equals(plaintext)).toBe(true)

    const theirs = age.armor.encode(await theirsEncrypt(plaintext, [recipient]))
    expect((await collect(decrypt(theirs, [identity]))).equals(plaintext)).toBe(true)
  })

  it('armors exactly as age-encryption does: its decode and encode give back our very text', async () => {
    const identity = await generateIdentity()
    const armored = (await collect(encrypt(testBytes(1000, 12), [await identityToRecipient(identity)], { armor: true }))).toString(
      'latin1',
    )
    expect(age.armor.encode(age.armor.decode(armored))).toBe(armored)
  })
})
