import { createHash, generateKeyPairSync, X509Certificate } from 'node:crypto'
import { mkdtemp, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { selfSignedCertificate } from '../src/identity/certificate.js'
import { createIdentity, loadOrCreateIdentity, nodeIdFromCertificate } from '../src/index.js'

let root: string
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'dcas-identity-'))
})
afterEach(async () => {
  await rm(root, { recursive: true, force: true })
})

function spkiSha256(certificatePem: string): string {
  const spki = new X509Certificate(certificatePem).publicKey.export({ type: 'spki', format: 'der' })
  return createHash('sha256').update(spki).digest('hex')
}

describe('node identity', () => {
  it('has a node id that is the lowercase hex SHA-256 of the certificate SPKI', async () => {
    const identity = await createIdentity()
    expect(identity.nodeId).toMatch(/^[0-9a-f]{64}$/)
    expect(identity.nodeId).toBe(spkiSha256(identity.certificate))
    expect(nodeIdFromCertificate(identity.certificate)).toBe(identity.nodeId)
    expect(nodeIdFromCertificate(new X509Certificate(identity.certificate).raw)).toBe(identity.nodeId)
  })

  it('is an Ed25519 key with a self-signed certificate for that key', async () => {
    const identity = await createIdentity()
    const cert = new X509Certificate(identity.certificate)
    expect(identity.privateKey.asymmetricKeyType).toBe('ed25519')
    expect(cert.publicKey.asymmetricKeyType).toBe('ed25519')
    expect(cert.checkPrivateKey(identity.privateKey)).toBe(true)
    expect(cert.verify(cert.publicKey)).toBe(true)
    expect(cert.checkIssued(cert)).toBe(true)
  })

  it('names the node in its certificate, valid from a day ago for a hundred years', async () => {
    const identity = await createIdentity()
    const cert = new X509Certificate(identity.certificate)
    expect(cert.subject).toBe(`CN=${identity.nodeId}`)
    expect(cert.issuer).toBe(cert.subject)
    const from = Date.parse(cert.validFrom)
    expect(Math.abs(Date.now() - 24 * 3600 * 1000 - from)).toBeLessThan(60_000)
    expect(new Date(Date.parse(cert.validTo)).getUTCFullYear()).toBe(new Date(from).getUTCFullYear() + 100)
  })

  it('writes serial numbers in minimal DER whatever their first bytes', () => {
    const { privateKey } = generateKeyPairSync('ed25519')
    const at = new Date(Date.UTC(2049, 11, 31, 23, 59, 59))
    const later = new Date(Date.UTC(2050, 0, 1, 0, 0, 0))
    for (const serial of [[0x00, 0x00, 0x85, 0x01], [0x00, 0x7f], [0x01], [0x00]]) {
      const cert = new X509Certificate(selfSignedCertificate(privateKey, { commonName: 'n', serial: Uint8Array.from(serial), notBefore: at, notAfter: later }))
      expect(cert.verify(cert.publicKey)).toBe(true)
      expect(BigInt(`0x${cert.serialNumber}`)).toBe(BigInt(`0x${Buffer.from(serial).toString('hex')}`))
      expect([Date.parse(cert.validFrom), Date.parse(cert.validTo)]).toEqual([at.getTime(), later.getTime()])
    }
  })

  it('differs between two fresh identities', async () => {
    const [a, b] = await Promise.all([createIdentity(), createIdentity()])
    expect(a.nodeId).not.toBe(b.nodeId)
  })

  it('does not print its private key', async () => {
    const identity = await createIdentity()
    const pem = identity.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
    const secretLine = pem.split('\n')[1]!
    expect(JSON.stringify(identity)).not.toContain(secretLine)
  })

  it('rejects an unparsable certificate with ERR_IDENTITY', () => {
    expect(() => nodeIdFromCertificate('not a certificate')).toThrow(expect.objectContaining({ code: 'ERR_IDENTITY' }))
  })
})

describe('loadOrCreateIdentity', () => {
  it('creates the key and certificate with mode 0600 in a directory with mode 0700', async () => {
    const dir = join(root, 'identity')
    await loadOrCreateIdentity(dir)
    expect((await stat(dir)).mode & 0o777).toBe(0o700)
    expect((await stat(join(dir, 'key.pem'))).mode & 0o777).toBe(0o600)
    expect((await stat(join(dir, 'cert.pem'))).mode & 0o777).toBe(0o600)
  })

  it('loads the same identity on the next call', async () => {
    const dir = join(root, 'identity')
    const created = await loadOrCreateIdentity(dir)
    const loaded = await loadOrCreateIdentity(dir)
    expect(loaded.nodeId).toBe(created.nodeId)
    expect(loaded.certificate).toBe(created.certificate)
    expect(loaded.privateKey.equals(created.privateKey)).toBe(true)
  })

  it('agrees on one identity when two callers create it at once', async () => {
    const dir = join(root, 'identity')
    const [a, b] = await Promise.all([loadOrCreateIdentity(dir), loadOrCreateIdentity(dir)])
    expect(a.nodeId).toBe(b.nodeId)
    expect((await loadOrCreateIdentity(dir)).nodeId).toBe(a.nodeId)
  })

  it('re-creates a missing certificate for the same key, keeping the node id', async () => {
    const dir = join(root, 'identity')
    const created = await loadOrCreateIdentity(dir)
    await unlink(join(dir, 'cert.pem'))
    const loaded = await loadOrCreateIdentity(dir)
    expect(loaded.nodeId).toBe(created.nodeId)
    expect(await readFile(join(dir, 'cert.pem'), 'utf8')).toBe(loaded.certificate)
  })

  it('fails with ERR_IDENTITY when the certificate is there but the key is missing, and overwrites nothing', async () => {
    const dir = join(root, 'identity')
    const created = await loadOrCreateIdentity(dir)
    await unlink(join(dir, 'key.pem'))
    await expect(loadOrCreateIdentity(dir)).rejects.toMatchObject({ code: 'ERR_IDENTITY' })
    expect(await readFile(join(dir, 'cert.pem'), 'utf8')).toBe(created.certificate)
  })

  it('fails with ERR_IDENTITY on a malformed key file, and keeps the file', async () => {
    const dir = join(root, 'identity')
    await loadOrCreateIdentity(dir)
    await writeFile(join(dir, 'key.pem'), '-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n')
    await expect(loadOrCreateIdentity(dir)).rejects.toMatchObject({ code: 'ERR_IDENTITY', name: 'IdentityError' })
    expect(await readFile(join(dir, 'key.pem'), 'utf8')).toContain('garbage')
  })

  it('fails with ERR_IDENTITY on a malformed certificate file', async () => {
    const dir = join(root, 'identity')
    await loadOrCreateIdentity(dir)
    await writeFile(join(dir, 'cert.pem'), 'hello')
    await expect(loadOrCreateIdentity(dir)).rejects.toMatchObject({ code: 'ERR_IDENTITY' })
  })

  it('fails with ERR_IDENTITY when the certificate belongs to another key', async () => {
    const dir = join(root, 'identity')
    await loadOrCreateIdentity(dir)
    await writeFile(join(dir, 'cert.pem'), (await createIdentity()).certificate)
    await expect(loadOrCreateIdentity(dir)).rejects.toMatchObject({ code: 'ERR_IDENTITY' })
  })

  it('fails with ERR_IDENTITY when the key is not Ed25519', async () => {
    const dir = join(root, 'identity')
    await loadOrCreateIdentity(dir)
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
    await writeFile(join(dir, 'key.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }))
    await expect(loadOrCreateIdentity(dir)).rejects.toMatchObject({ code: 'ERR_IDENTITY' })
  })

  it('fails with ERR_IDENTITY when the directory is a file', async () => {
    const file = join(root, 'identity')
    await writeFile(file, 'x')
    await expect(loadOrCreateIdentity(file)).rejects.toMatchObject({ code: 'ERR_IDENTITY' })
  })

  it('fails with ERR_ABORTED on an aborted signal, writing nothing', async () => {
    const dir = join(root, 'identity')
    await expect(loadOrCreateIdentity(dir, { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ERR_ABORTED' })
    await expect(stat(dir)).rejects.toMatchObject({ code: 'ENOENT' })
  })
})
