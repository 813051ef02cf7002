// What is on the nodes' disks, read directly: blob files, manifests (the owner's in plaintext,
// the holders' decrypted with the owner's age identity, as `age -d` would), canary scans, and
// bit rot (bytes flipped in place in blob files at rest).
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { open, readdir, readFile, rm, stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { decryptBytes, readIdentityFile } from '@dcas/crypto'
import { StreamScanner } from './proxy.js'
import type { Rng } from './rng.js'

/** Every regular file under `dir`, recursively ([] when it does not exist). */
export async function filesUnder(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true, recursive: true })
    return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
}

/** A node's own blob files (plaintext chunks and manifests). */
export const ownBlobFiles = (root: string): Promise<string[]> => filesUnder(join(root, 'blobs'))

/** The owners a node holds replicas for. */
export async function replicaOwners(root: string): Promise<string[]> {
  try {
    return (await readdir(join(root, 'replicas'))).filter((o) => /^[0-9a-f]{64}$/.test(o))
  } catch {
    return []
  }
}

/** The replica blob files a node holds for `owner`. */
export const replicaFiles = (root: string, owner: string): Promise<string[]> => filesUnder(join(root, 'replicas', owner, 'blobs'))

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const piece of createReadStream(path)) hash.update(piece as Buffer)
  return hash.digest('hex')
}

/** How often any of `needles` occurs in the file. */
export async function countIn(path: string, needles: readonly Buffer[]): Promise<number> {
  const scanner = new StreamScanner(needles)
  for await (const piece of createReadStream(path)) scanner.push(piece as Buffer)
  return scanner.hits
}

/** A manifest as the runner reads it. */
export interface ManifestView {
  /** The blob id (plaintext on the owner, ciphertext on a holder). */
  id: string
  key: string
  version: number
  size: number
  sha256: string
  chunks: Array<{ plainId: string; cipherId: string; size: number }>
}

/** How a manifest starts: version 1 (no MAC), or version 2 (padded, with the owner's MAC). */
const MANIFEST_PREFIXES = ['{"format":"dcas-manifest-v1"', '{"format":"dcas-manifest-v2"'].map((p) => Buffer.from(p))

function parseManifest(id: string, bytes: Uint8Array): ManifestView | undefined {
  const buf = Buffer.from(bytes)
  if (!MANIFEST_PREFIXES.some((p) => buf.subarray(0, p.length).equals(p))) return undefined
  try {
    const m = JSON.parse(buf.toString('utf8')) as Omit<ManifestView, 'id'>
    return { id, key: m.key, version: m.version, size: m.size, sha256: m.sha256, chunks: m.chunks }
  } catch {
    return undefined
  }
}

/** Largest file tried as a manifest (a 64 MiB object at 64 KiB chunks has a manifest of ~180 KiB). */
const MAX_MANIFEST_FILE = 512 * 1024

/** The manifest in an owner's blob file, if it is one. */
export async function ownManifestIn(path: string): Promise<ManifestView | undefined> {
  const { size } = await stat(path)
  if (size > MAX_MANIFEST_FILE) return undefined
  return parseManifest(basename(path), await readFile(path))
}

/** The manifest in a holder's replica file, decrypted with the owner's identities, if it is one. */
export async function heldManifestIn(path: string, identities: string[]): Promise<ManifestView | undefined> {
  const { size } = await stat(path)
  if (size > MAX_MANIFEST_FILE) return undefined
  try {
    return parseManifest(basename(path), await decryptBytes(await readFile(path), identities))
  } catch {
    return undefined
  }
}

/** The age identities of the node whose root is `root`. */
export const identitiesOf = (root: string): Promise<string[]> => readIdentityFile(join(root, 'identity', 'age-identity.txt'))

/**
 * The manifests among `files`: read from the file when it is intact, or as it was before we
 * damaged it when it still holds our damage (the rot tracker remembers).
 */
export async function manifestsIn(files: string[], read: (path: string) => Promise<ManifestView | undefined>, rot: RotTracker): Promise<ManifestView[]> {
  const out: ManifestView[] = []
  for (const f of files) {
    const m = (await rot.untouchedSince(f)) ? rot.views.get(f) : await read(f)
    if (m !== undefined) out.push(m)
  }
  return out
}

/** Bytes flipped in place by the runner, so that the final check can tell them from damage it did not make. */
export class RotTracker {
  /** path → SHA-256 of the file right after we damaged it. */
  readonly files = new Map<string, string>()
  /** path → the manifest the file held before we damaged or removed it. */
  readonly views = new Map<string, ManifestView>()
  /** Blob files we removed. */
  readonly removed = new Set<string>()

  /** Whether we damaged or removed `path`. */
  touched(path: string): boolean {
    return this.files.has(path) || this.removed.has(path)
  }

  /** Removes `path` (holding `view`, if a manifest). */
  async remove(path: string, view: ManifestView | undefined): Promise<void> {
    if (view !== undefined) this.views.set(path, view)
    await rm(path, { force: true })
    this.removed.add(path)
  }

  /** The manifests we removed from under `dir`, as they were. */
  removedManifestsUnder(dir: string): ManifestView[] {
    return [...this.removed].flatMap((p) => {
      const view = p.startsWith(`${dir}/`) ? this.views.get(p) : undefined
      return view === undefined ? [] : [view]
    })
  }

  /** Flips one bit in each of `count` bytes of `path` (holding `view`, if a manifest); returns the number of bytes flipped. */
  async flip(path: string, rng: Rng, count: number, view: ManifestView | undefined): Promise<number> {
    if (view !== undefined) this.views.set(path, view)
    const { size } = await stat(path)
    if (size === 0) return 0
    const fh = await open(path, 'r+')
    try {
      const one = Buffer.alloc(1)
      for (let i = 0; i < count; i++) {
        const at = rng.int(0, size - 1)
        await fh.read(one, 0, 1, at)
        one[0]! ^= 1 << rng.int(0, 7)
        await fh.write(one, 0, 1, at)
      }
      await fh.sync()
    } finally {
      await fh.close()
    }
    this.files.set(path, await sha256File(path))
    return count
  }

  /** Whether `path` still holds exactly the bytes we left in it. */
  async untouchedSince(path: string): Promise<boolean> {
    const mark = this.files.get(path)
    return mark !== undefined && mark === (await sha256File(path))
  }
}
