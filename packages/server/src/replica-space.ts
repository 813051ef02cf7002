// The holder's disk: one blob store per owner under `replicas/<owner>/`, made on the owner's first
// accepted blob, and the limits of what owners may hold here (bytes and refs per owner, how many
// owners, and free space kept for this node's own data), with the accounting they need.
import { readdir, statfs } from 'node:fs/promises'
import { join } from 'node:path'
import { openBlobStore, type BlobStore, type BlobStoreFs } from '@dcas/store'
import { InvalidOptionsError } from './errors.js'
import { isHex64 } from './wire.js'

/** What other owners may hold on this node. */
export interface HolderLimits {
  /** Bytes of replicas one owner may hold here (default: no limit but the free-space reserve). */
  bytesPerOwner?: number
  /** Refs (live or deleted) one owner may keep here (default 1,000,000). */
  refsPerOwner?: number
  /** Owners whose replicas this node holds (default 1024). */
  owners?: number
  /** Free bytes kept on the data directory's file system for this node's own data (default: 5% of it, at most 1 GiB). */
  reserveBytes?: number
}

export const DEFAULT_REFS_PER_OWNER = 1_000_000
export const DEFAULT_OWNERS = 1024

/** A holder's refusal of a blob, as it answers it. */
export interface Refusal {
  code: 'ERR_QUOTA' | 'ERR_DISK_FULL'
  message: string
}

/** How long a reading of the file system's free space answers for (less what this node put since). */
const FREE_SPACE_READING_MS = 1000

interface Usage {
  bytes: number
  refs: number
}

/** Checks limits given as options. */
export function assertValidLimits(limits: HolderLimits | undefined): void {
  for (const [name, value] of Object.entries(limits ?? {})) {
    if (value !== undefined && (typeof value !== 'number' || !(value >= 0))) throw new InvalidOptionsError(`holderLimits.${name} must be a non-negative number, got ${String(value)}`)
  }
}

/** The owners' replica stores on this node, and what they use of it. */
export class ReplicaSpace {
  readonly #dir: string
  readonly #limits: Required<Omit<HolderLimits, 'reserveBytes'>> & { reserveBytes: number | undefined }
  readonly #stores = new Map<string, Promise<BlobStore>>()
  readonly #usage = new Map<string, Usage>()
  readonly #fs: BlobStoreFs | undefined
  /** The last reading of the free space beyond the reserve (and of the reserve), and the bytes put here since. */
  #room: { at: number; bytes: number; reserve: number; putSince: number } | undefined

  /** `fs` replaces the file system functions of the owners' stores (for fault injection in tests). */
  constructor(root: string, limits: HolderLimits = {}, options: { fs?: BlobStoreFs } = {}) {
    this.#dir = join(root, 'replicas')
    this.#fs = options.fs
    this.#limits = {
      bytesPerOwner: limits.bytesPerOwner ?? Number.POSITIVE_INFINITY,
      refsPerOwner: limits.refsPerOwner ?? DEFAULT_REFS_PER_OWNER,
      owners: limits.owners ?? DEFAULT_OWNERS,
      reserveBytes: limits.reserveBytes,
    }
  }

  /** The owners that have a replica store on disk. */
  async owners(): Promise<string[]> {
    return (await readdir(this.#dir).catch(() => [] as string[])).filter((name) => isHex64(name))
  }

  /** The owner's store if it has one (opened on first use), else `undefined`: reads never make one. */
  async existing(owner: string): Promise<BlobStore | undefined> {
    const open = this.#stores.get(owner)
    if (open !== undefined) return open
    if (!(await this.owners()).includes(owner)) return undefined
    return this.store(owner)
  }

  /** The owner's store, made if it has none: for a blob that was accepted. */
  store(owner: string): Promise<BlobStore> {
    if (!isHex64(owner)) throw new InvalidOptionsError('owner ids are 64 lowercase hex characters')
    let store = this.#stores.get(owner)
    if (store === undefined) {
      store = openBlobStore({ root: join(this.#dir, owner), ...(this.#fs === undefined ? {} : { fs: this.#fs }) })
      this.#stores.set(owner, store)
    }
    return store
  }

  #usageOf(owner: string): Usage {
    let usage = this.#usage.get(owner)
    if (usage === undefined) {
      usage = { bytes: 0, refs: 0 }
      this.#usage.set(owner, usage)
    }
    return usage
  }

  /**
   * Why the owner may not put one more blob here now, or `undefined` when it may: a quota (`ERR_QUOTA`), or
   * the free-space reserve (`ERR_DISK_FULL`, which passes once the disk has room again).
   */
  async blobRefusal(owner: string): Promise<Refusal | undefined> {
    const usage = this.#usage.get(owner)
    if (usage === undefined && this.#usage.size >= this.#limits.owners) return { code: 'ERR_QUOTA', message: `this node holds replicas for ${this.#limits.owners} owners already` }
    if ((usage?.bytes ?? 0) >= this.#limits.bytesPerOwner) return { code: 'ERR_QUOTA', message: `this owner's replicas here reached their quota of ${this.#limits.bytesPerOwner} bytes` }
    const room = await this.#roomBeyondReserve()
    if (room.bytes - room.putSince <= 0) return { code: 'ERR_DISK_FULL', message: `this node keeps its last ${Math.round(room.reserve)} bytes of disk for its own data` }
    return undefined
  }

  /**
   * The latest reading of the free bytes beyond the reserve: it stands for {@link FREE_SPACE_READING_MS} while
   * what owners put here since leaves room; else (and once the room is used up) the file system is read again.
   */
  async #roomBeyondReserve(): Promise<{ bytes: number; reserve: number; putSince: number }> {
    const now = performance.now()
    const last = this.#room
    if (last !== undefined && now - last.at < FREE_SPACE_READING_MS && last.bytes - last.putSince > 0) return last
    const fs = await statfs(this.#dir)
    const reserve = this.#limits.reserveBytes ?? Math.min(1024 ** 3, 0.05 * fs.blocks * fs.bsize)
    this.#room = { at: now, bytes: fs.bavail * fs.bsize - reserve, reserve, putSince: 0 }
    return this.#room
  }

  /** Why the owner may not keep one more ref here, or `undefined` when it may. */
  refRefusal(owner: string): string | undefined {
    const usage = this.#usage.get(owner)
    if (usage === undefined && this.#usage.size >= this.#limits.owners) return `this node holds replicas for ${this.#limits.owners} owners already`
    if ((usage?.refs ?? 0) >= this.#limits.refsPerOwner) return `this owner keeps ${this.#limits.refsPerOwner} refs here already`
    return undefined
  }

  /** Counts bytes of the owner's blobs put (or, negative, freed). */
  bytes(owner: string, delta: number): void {
    this.#usageOf(owner).bytes += delta
    if (this.#room !== undefined && delta > 0) this.#room.putSince += delta
  }

  /** Counts refs of the owner's recorded (or, negative, dropped). */
  refs(owner: string, delta: number): void {
    this.#usageOf(owner).refs += delta
  }

  /** What the owner holds here. */
  usage(owner: string): Usage {
    return { ...(this.#usage.get(owner) ?? { bytes: 0, refs: 0 }) }
  }

  /** Deletes one of the owner's blobs, keeping the count of its bytes. */
  async remove(store: BlobStore, owner: string, id: string): Promise<void> {
    const info = await store.stat(id)
    if ((await store.delete(id)) && info !== undefined) this.bytes(owner, -info.size)
  }

  /** Closes every store. */
  async close(): Promise<void> {
    for (const store of this.#stores.values()) await (await store).close()
  }
}
