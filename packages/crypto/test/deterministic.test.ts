// Deterministic (seeded) encryption: keyed convergent encryption for content-addressed storage.
import * as age from 'age-encryption'
import { createHash, createHmac, createPrivateKey, createPublicKey, hkdfSync, randomBytes } from 'node:crypto'
import { beforeAll, describe, expect, it } from 'vitest'
import {
  SEED_BYTES,
  decryptBytes,
  encrypt,
  encryptBytes,
  encryptBytesWithPassphrase,
  encryptWithPassphrase,
  generateIdentity,
  identityToRecipient,
  type PassphraseEncryptOptions,
} from '../src/index.js'
import { CHUNK, collect, failureCode, pieces, splitFile, testBytes } from './helpers.js'

let identities: string[]
let recipients: string[]
beforeAll(async () => {
  identities = await Promise.all([generateIdentity(), generateIdentity()])
  recipients = await Promise.all(identities.map((id) => identityToRecipient(id)))
})

const seedOf = (text: string): Buffer => createHash('sha256').update(text).digest()
const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

/** A source that records whether it was ever read. */
function watchedSource(): { source: Generator<Uint8Array>; read: () => boolean } {
  let read = false
  function* gen(): Generator<Uint8Array> {
    read = true
    yield testBytes(10)
  }
  return { source: gen(), read: () => read }
}

describe('deterministic encryption (seed)', () => {
  it('gives byte-identical files for the same seed, plaintext and recipients', async () => {
    const plaintext = testBytes(3 * CHUNK + 123, 5)
    const seed = seedOf('one')
    const first = await encryptBytes(plaintext, recipients, { seed })
    const second = await encryptBytes(plaintext, recipients, { seed })
    expect(sha256(second)).toBe(sha256(first))
  })

  it('gives the same bytes streamed through any chunking as in one piece', async () => {
    const plaintext = testBytes(2 * CHUNK + 7, 6)
    const seed = seedOf('chunking')
    const whole = await encryptBytes(plaintext, recipients, { seed })
    const streamed = await collect(encrypt(pieces(plaintext, [1, 4096, 70_000, 3]), recipients, { seed }))
    expect(streamed.equals(whole)).toBe(true)
  })

  it('gives identical armored files for the same seed', async () => {
    const seed = seedOf('armor')
    const a = await encryptBytes('armored text', recipients, { seed, armor: true })
    const b = await encryptBytes('armored text', recipients, { seed, armor: true })
    expect(Buffer.from(a).toString('latin1')).toBe(Buffer.from(b).toString('latin1'))
    expect(Buffer.from(a).toString('latin1')).toMatch(/^-----BEGIN AGE ENCRYPTED FILE-----\n/)
  })

  it('gives different header and payload for a different seed', async () => {
    const plaintext = testBytes(1000, 7)
    const a = splitFile(await encryptBytes(plaintext, recipients, { seed: seedOf('a') }))
    const b = splitFile(await encryptBytes(plaintext, recipients, { seed: seedOf('b') }))
    expect(a.header.equals(b.header)).toBe(false)
    expect(a.nonce.equals(b.nonce)).toBe(false)
    expect(a.chunks[0]!.equals(b.chunks[0]!)).toBe(false)
  })

  it('stays randomized without a seed', async () => {
    const a = await encryptBytes('same text', recipients)
    const b = await encryptBytes('same text', recipients)
    expect(sha256(a)).not.toBe(sha256(b))
  })

  it('writes files that age-encryption decrypts with each recipient identity', async () => {
    const plaintext = testBytes(CHUNK + 1, 8)
    const file = await encryptBytes(plaintext, recipients, { seed: seedOf('interop') })
    for (const identity of identities) {
      const d = new age.Decrypter()
      d.addIdentity(identity)
      expect(Buffer.from(await d.decrypt(file)).equals(plaintext)).toBe(true)
    }
    expect(Buffer.from(await decryptBytes(file, [identities[1]!])).equals(plaintext)).toBe(true)
  })

  it('derives every value from the seed with HKDF-SHA256 and the documented labels', async () => {
    // Content addresses depend on these bytes: this pins the derivation, computed here independently.
    const seed = seedOf('pinned')
    const file = await encryptBytes(testBytes(100, 9), recipients, { seed })
    const { header, nonce } = splitFile(file)
    const derive = (info: string, length: number): Buffer =>
      Buffer.from(hkdfSync('sha256', seed, 'dcas/crypto deterministic age v1', info, length))

    expect(nonce.equals(derive('payload nonce', 16))).toBe(true)

    const shares = [...header.toString('latin1').matchAll(/^-> X25519 (\S+)$/gm)].map((m) => m[1])
    const pkcs8Prefix = Buffer.from('302e020100300506032b656e04220420', 'hex')
    const expectedShares = [0, 1].map((i) => {
      const privateKey = createPrivateKey({
        key: Buffer.concat([pkcs8Prefix, derive(`X25519 ephemeral secret ${i}`, 32)]),
        format: 'der',
        type: 'pkcs8',
      })
      const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' })
      return spki.subarray(-32).toString('base64').replace(/=+$/, '')
    })
    expect(shares).toEqual(expectedShares)

    // The header MAC verifies under the file key derived from the seed.
    const text = header.toString('latin1')
    const macInputEnd = text.lastIndexOf('\n--- ') + '\n---'.length
    const macKey = hkdfSync('sha256', derive('file key', 16), new Uint8Array(0), 'header', 32)
    const mac = createHmac('sha256', Buffer.from(macKey)).update(text.slice(0, macInputEnd), 'latin1').digest()
    expect(text.slice(macInputEnd + 1, -1)).toBe(mac.toString('base64').replace(/=+$/, ''))
  })

  for (const [what, seed] of [
    ['31 bytes', new Uint8Array(SEED_BYTES - 1)],
    ['33 bytes', new Uint8Array(SEED_BYTES + 1)],
    ['empty', new Uint8Array(0)],
    ['a string', 'a'.repeat(SEED_BYTES)],
    ['an array of numbers', Array.from({ length: SEED_BYTES }, () => 1)],
  ] as const) {
    it(`rejects a seed that is ${what} with ERR_INVALID_ARGUMENT, reading nothing`, async () => {
      const { source, read } = watchedSource()
      const options = { seed: seed as unknown as Uint8Array }
      expect(await failureCode(encrypt(source, recipients, options))).toBe('ERR_INVALID_ARGUMENT')
      expect(read()).toBe(false)
      await expect(encryptBytes('text', recipients, options)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
    })
  }

  it('refuses a seed on passphrase encryption with ERR_INVALID_ARGUMENT', async () => {
    const options = { seed: randomBytes(SEED_BYTES), workFactor: 10 } as PassphraseEncryptOptions
    expect(await failureCode(encryptWithPassphrase('text', 'pass', options))).toBe('ERR_INVALID_ARGUMENT')
    await expect(encryptBytesWithPassphrase('text', 'pass', options)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' })
  })

  it('does not depend on the caller keeping the seed array intact', async () => {
    const seed = seedOf('wiped')
    const expected = await encryptBytes(testBytes(CHUNK + 5), recipients, { seed: Buffer.from(seed) })
    const mutable = Buffer.from(seed)
    const stream = encrypt(testBytes(CHUNK + 5), recipients, { seed: mutable })
    const first = await stream.next()
    mutable.fill(0)
    const rest = await collect(stream)
    expect(Buffer.concat([first.value as Uint8Array, rest]).equals(expected)).toBe(true)
  })
})
