// The node's secrets in `root/identity/`, all mode 0600: the owner's age identity (in the age
// CLI's key-file format, so `age -d -i age-identity.txt` opens any replica) and the cluster
// secret. The keys that name refs and seed encryption are derived from the age identity, so a
// copy of `identity/` is all a node needs to get its data back from its peers.
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto'
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { loadOrCreateIdentityFile } from '@dcas/crypto'

/** The owner's keys, derived from its age identity. */
export interface OwnerKeys {
  /** `AGE-SECRET-KEY-1…` */
  identity: string
  /** `age1…` */
  recipient: string
  /** refId = HMAC-SHA256(refKey, key): how peers name a key without seeing it. */
  refKey: Buffer
  /** Seeds deterministic encryption: the same chunk always gives the same ciphertext. */
  seedKey: Buffer
  /** Signs this owner's deletes, so that no peer can forge one. */
  tombstoneKey: Buffer
  /** Authenticates this owner's manifests (a MAC inside each), so that no peer can forge one. */
  manifestKey: Buffer
}

/** A delete of one of the owner's refs, as peers keep it: `proof` shows the owner made it. */
export interface Tombstone {
  refId: string
  version: number
  /** When the owner deleted it (owner's clock, ms since the epoch). */
  deletedAt: number
  /** HMAC-SHA256(tombstoneKey, refId:version:deletedAt), hex. */
  proof: string
}

export const AGE_IDENTITY_FILE = 'age-identity.txt'
export const CLUSTER_SECRET_FILE = 'cluster-secret'

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

async function writeSecret(path: string, content: string): Promise<void> {
  await writeFile(path, content, { mode: 0o600, flag: 'wx' })
  await chmod(path, 0o600)
}

/** Reads the age identity from `dir`, creating it on first use. */
export async function loadOwnerKeys(dir: string): Promise<OwnerKeys> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const { identities, recipient } = await loadOrCreateIdentityFile(join(dir, AGE_IDENTITY_FILE))
  const identity = identities[0]!
  const derive = (info: string): Buffer => Buffer.from(hkdfSync('sha256', identity, 'dcas', info, 32))
  return { identity, recipient, refKey: derive('dcas refId v1'), seedKey: derive('dcas encryption seed v1'), tombstoneKey: derive('dcas tombstone v1'), manifestKey: derive('dcas manifest v2') }
}

/** The cluster secret: the one given (saved for next time), else the saved one, else a new one. */
export async function loadClusterSecret(dir: string, given: string | Uint8Array | undefined): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const path = join(dir, CLUSTER_SECRET_FILE)
  const saved = (await readIfExists(path))?.trim()
  if (given !== undefined) {
    const secret = typeof given === 'string' ? given : Buffer.from(given).toString('base64')
    if (saved !== secret) await writeFile(path, `${secret}\n`, { mode: 0o600 })
    return secret
  }
  if (saved !== undefined && saved.length > 0) return saved
  const secret = randomBytes(32).toString('base64url')
  await writeSecret(path, `${secret}\n`)
  return secret
}

/** The ref id of a key. */
export function refIdOf(keys: OwnerKeys, key: string): string {
  return createHmac('sha256', keys.refKey).update(key, 'utf8').digest('hex')
}

/** The encryption seed of a blob for a recipient set. */
export function seedOf(keys: OwnerKeys, plainId: string, recipientsId: string): Buffer {
  return createHmac('sha256', keys.seedKey).update(`${plainId}:${recipientsId}`).digest()
}

/** The owner's delete of `refId` up to `version`, with the proof that it made it. */
export function signTombstone(keys: OwnerKeys, refId: string, version: number, deletedAt: number): Tombstone {
  const proof = createHmac('sha256', keys.tombstoneKey).update(`${refId}:${version}:${deletedAt}`).digest('hex')
  return { refId, version, deletedAt, proof }
}

/** Whether a tombstone a peer reports was made by this owner (a peer cannot forge a delete). */
export function isOwnTombstone(keys: OwnerKeys, t: { refId: string; version: number; deletedAt?: number | undefined; proof?: string | undefined }): t is Tombstone {
  if (t.deletedAt === undefined || t.proof === undefined) return false
  const expected = Buffer.from(signTombstone(keys, t.refId, t.version, t.deletedAt).proof, 'hex')
  const given = Buffer.from(t.proof, 'hex')
  return given.length === expected.length && timingSafeEqual(given, expected)
}
