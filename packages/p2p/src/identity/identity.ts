import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  X509Certificate,
  type KeyObject,
} from 'node:crypto'
import { link, mkdir, open, readFile, rename, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { AbortedError, IdentityError } from '../errors.js'
import { selfSignedCertificate } from './certificate.js'
import type { AbortOptions } from '../types.js'

/**
 * A node's long-lived identity: an Ed25519 key and the self-signed X.509
 * certificate it presents in every TLS handshake.
 */
export interface NodeIdentity {
  /** Lowercase hex SHA-256 of the certificate's SubjectPublicKeyInfo (DER). */
  readonly nodeId: string
  /** The self-signed X.509 certificate, PEM. */
  readonly certificate: string
  /** The Ed25519 private key (a `KeyObject`, so it never prints or serializes by accident). */
  readonly privateKey: KeyObject
}

/** File names inside an identity directory. */
export const IDENTITY_FILES = { privateKey: 'key.pem', certificate: 'cert.pem' } as const

// Chain verification is off (peers are authenticated by admission), so validity is not what protects us.
const VALIDITY_YEARS = 100

/**
 * The node id of a certificate: lowercase hex SHA-256 of its SPKI (DER).
 * Accepts PEM text or DER bytes; throws `ERR_IDENTITY` when it does not parse.
 */
export function nodeIdFromCertificate(certificate: string | Uint8Array): string {
  let cert: X509Certificate
  try {
    cert = new X509Certificate(certificate)
  } catch (cause) {
    throw new IdentityError('the certificate does not parse as X.509', { cause })
  }
  return nodeIdFromPublicKey(cert.publicKey)
}

/** The node id of a public key: lowercase hex SHA-256 of its SPKI (DER). */
export function nodeIdFromPublicKey(key: KeyObject): string {
  return createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest('hex')
}

function selfSign(privateKey: KeyObject): string {
  const publicKey = createPublicKey(privateKey)
  const serial = randomBytes(16)
  serial[0] = serial[0]! & 0x7f // a positive INTEGER
  const notBefore = new Date(Date.now() - 24 * 3600 * 1000) // tolerate clock skew between peers
  const notAfter = new Date(notBefore)
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + VALIDITY_YEARS)
  return selfSignedCertificate(privateKey, { commonName: nodeIdFromPublicKey(publicKey), serial, notBefore, notAfter })
}

/** Checks that a key and certificate form a dcas identity, and returns it; throws `ERR_IDENTITY` otherwise. */
function identityOf(privateKeyPem: string, certificatePem: string): NodeIdentity {
  let privateKey: KeyObject
  let cert: X509Certificate
  try {
    privateKey = createPrivateKey(privateKeyPem)
  } catch (cause) {
    throw new IdentityError('the private key does not parse', { cause })
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new IdentityError(`the private key is ${privateKey.asymmetricKeyType ?? 'not asymmetric'}, not Ed25519`)
  }
  try {
    cert = new X509Certificate(certificatePem)
  } catch (cause) {
    throw new IdentityError('the certificate does not parse as X.509', { cause })
  }
  if (!cert.checkPrivateKey(privateKey)) throw new IdentityError('the certificate does not belong to the private key')
  return { nodeId: nodeIdFromPublicKey(cert.publicKey), certificate: certificatePem, privateKey }
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new AbortedError(undefined, { cause: signal.reason })
}

/**
 * Creates a new identity in memory: a fresh Ed25519 key and its self-signed certificate.
 * Nothing is written to disk; see {@link loadOrCreateIdentity} for a persistent one.
 */
export function createIdentity(options: AbortOptions = {}): Promise<NodeIdentity> {
  // What the executor throws (an aborted signal) rejects the promise.
  return new Promise((resolve) => {
    throwIfAborted(options.signal)
    const { privateKey } = generateKeyPairSync('ed25519')
    const certificate = selfSign(privateKey)
    resolve({ nodeId: nodeIdFromCertificate(certificate), certificate, privateKey })
  })
}

function newPrivateKeyPem(): string {
  return generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new IdentityError(`cannot read ${path}`, { cause })
  }
}

/** Writes `data` to a fresh temporary file next to `path` (mode 0600, fsynced) and returns its name. */
async function writeTemp(path: string, data: string): Promise<string> {
  const temp = `${path}.tmp-${randomBytes(6).toString('hex')}`
  const file = await open(temp, 'wx', 0o600)
  try {
    await file.writeFile(data)
    await file.sync()
  } finally {
    await file.close()
  }
  return temp
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/**
 * Loads the identity kept in `dir` (`key.pem` and `cert.pem`), or creates one there
 * when the directory holds none. The directory is created with mode 0700, the
 * files with mode 0600; writes are atomic (temp file, fsync, rename), so a crash
 * never leaves a half-written key. Loading the same directory again yields the
 * same node id.
 *
 * A key without its certificate (a crash between the two writes) gets a new
 * certificate for the same key, hence the same node id. A certificate without
 * its key, a file that does not parse, a key that is not Ed25519, or a
 * certificate that does not match the key fail with `ERR_IDENTITY`, and nothing
 * is overwritten.
 *
 * @example
 * ```ts
 * const identity = await loadOrCreateIdentity(join(dataDir, 'identity'))
 * console.log(identity.nodeId)
 * ```
 */
export async function loadOrCreateIdentity(dir: string, options: AbortOptions = {}): Promise<NodeIdentity> {
  throwIfAborted(options.signal)
  const keyPath = join(dir, IDENTITY_FILES.privateKey)
  const certPath = join(dir, IDENTITY_FILES.certificate)
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 })
  } catch (cause) {
    throw new IdentityError(`cannot create the identity directory ${dir}`, { cause })
  }
  let keyPem = await readOptional(keyPath)
  const certPem = await readOptional(certPath)
  if (keyPem !== undefined && certPem !== undefined) return identityOf(keyPem, certPem)
  if (keyPem === undefined && certPem !== undefined) {
    throw new IdentityError(`${certPath} exists but its private key ${keyPath} is missing`)
  }
  throwIfAborted(options.signal)

  try {
    if (keyPem === undefined) {
      const candidate = newPrivateKeyPem()
      const temp = await writeTemp(keyPath, candidate)
      try {
        // link() fails when the key exists: a concurrent creator won, and its key is the one to use.
        await link(temp, keyPath)
        keyPem = candidate
      } catch (cause) {
        if ((cause as NodeJS.ErrnoException).code !== 'EEXIST') throw cause
        keyPem = await readFile(keyPath, 'utf8')
      } finally {
        await unlink(temp)
      }
    }
    let privateKey: KeyObject
    try {
      privateKey = createPrivateKey(keyPem)
    } catch (cause) {
      throw new IdentityError(`${keyPath} does not parse as a private key`, { cause })
    }
    if (privateKey.asymmetricKeyType !== 'ed25519') throw new IdentityError(`${keyPath} is not an Ed25519 key`)
    const certificate = selfSign(privateKey)
    const temp = await writeTemp(certPath, certificate)
    await rename(temp, certPath)
    await syncDir(dir)
    return identityOf(keyPem, certificate)
  } catch (cause) {
    if (cause instanceof IdentityError) throw cause
    throw new IdentityError(`cannot write the identity to ${dir}`, { cause })
  }
}
