import { createHash, createHmac, randomBytes } from 'node:crypto'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decrypt, decryptBytes, encrypt, encryptBytes, generateIdentity, loadOrCreateIdentityFile } from '@dcas/crypto'

const dir = await mkdtemp(join(tmpdir(), 'dcas-crypto-example-'))
try {
  // An identity file in the age key-file format: `age -d -i age-identity.txt` reads it too.
  const path = join(dir, 'age-identity.txt')
  const { identities, recipient, created } = await loadOrCreateIdentityFile(path)
  console.log(`identity file created: ${created}, mode ${((await stat(path)).mode & 0o777).toString(8)}`)

  // Streaming both ways: any (async) iterable of bytes in, bytes out, memory bounded.
  function* source(): Generator<Uint8Array> {
    yield Buffer.from('hello, ')
    yield Buffer.from('age')
  }
  let text = ''
  for await (const piece of decrypt(encrypt(source(), [recipient]), identities)) text += Buffer.from(piece).toString()
  console.log(text)

  // Deterministic encryption: a secret seed, unique per plaintext, gives the same bytes every time.
  const ownerSecret = randomBytes(32) // in a real node: persistent and secret
  const plaintext = Buffer.from('a chunk stored once')
  const seed = createHmac('sha256', ownerSecret).update(createHash('sha256').update(plaintext).digest()).digest()
  const first = await encryptBytes(plaintext, [recipient], { seed })
  const again = await encryptBytes(plaintext, [recipient], { seed })
  console.log(`same ciphertext: ${Buffer.from(first).equals(again)}`)
  console.log(`decrypted: ${Buffer.from(await decryptBytes(first, identities)).toString()}`)

  // Failures are typed: test `code`.
  await decryptBytes(first, [await generateIdentity()]).catch((err: { code: string }) => console.log(`other identity: ${err.code}`))
} finally {
  await rm(dir, { recursive: true, force: true })
}
