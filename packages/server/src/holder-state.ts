// The holder's records (refs, reference counts, damage) and the storage steps its requests share:
// telling which blobs are missing, freeing those no ref counts.
import type { BlobStore, Index, IndexTable } from '@dcas/store'
import type { KeyedLocks } from './locks.js'
import type { Logger } from './logger.js'
import type { ReplicaSpace } from './replica-space.js'
import type { Exchange, Header } from './wire.js'

/** A holder's record of one owner's ref: live (with the blobs it uses) or a tombstone. */
export interface ReplicaRef {
  version: number
  deleted: boolean
  manifestCipherId?: string
  /** The object's size, as owners of earlier releases told it (no longer sent: it stays in the encrypted manifest). */
  size?: number
  /** Distinct chunk cipher ids (the manifest's not included). */
  cipherIds?: string[]
  /** When the owner deleted it (owner's clock), for a tombstone; owners of earlier releases also sent it for a live ref. */
  writtenAt?: number
  /** A tombstone's proof that the owner made it, kept to hand back in catch-up. */
  proof?: string
  updatedAt: number
}

/** The holder's index tables. */
export interface HolderTables {
  /** `${owner}/${refId}` → the ref or its tombstone. */
  refs: IndexTable<ReplicaRef>
  /** `${owner}/${cipherId}` → references to the blob. */
  counts: IndexTable<number>
  /** `${owner}/${cipherId}` → found missing or damaged while serving. */
  damaged: IndexTable<true>
}

/** Opens the holder's tables in an index. */
export function holderTables(index: Index): HolderTables {
  return { refs: index.table('replica_refs'), counts: index.table('replica_counts'), damaged: index.table('replica_damaged') }
}

/** What the request handlers work with: the holder's storage. */
export interface HolderContext {
  index: Index
  tables: HolderTables
  locks: KeyedLocks
  log: Logger
  /** The owners' replica stores and their limits. */
  space: ReplicaSpace
  /** Requests of other protocols served on the same streams (peer records), by op. */
  routes?: Partial<Record<string, RouteHandler>>
  /** Told when the owner's live refs here grew or shrank (a ref put, deleted or dropped), by how many. */
  onRefsChanged?: (owner: string, delta: number) => void
}

/** Serves a request of another protocol from `peer` on the holder's streams. */
export type RouteHandler = (peer: string, h: Header, ex: Exchange) => Promise<void>

/** Who a request is served for: the holder's storage, the owner it came from, and the blobs its connection put. */
export interface Served {
  ctx: HolderContext
  owner: string
  received: Set<string>
}

export type Handler = (served: Served, h: Header, ex: Exchange) => Promise<void>

export const refIdsOf = (ref: ReplicaRef): string[] => (ref.deleted || ref.manifestCipherId === undefined ? [] : [...new Set([...(ref.cipherIds ?? []), ref.manifestCipherId])])

export async function markDamaged(ctx: HolderContext, owner: string, cipherId: string): Promise<void> {
  const key = `${owner}/${cipherId}`
  if (ctx.tables.counts.has(key)) await ctx.index.transaction((tx) => tx.put(ctx.tables.damaged, key, true))
}

/** Those of `ids` are here and whole again: their marks of damage go. */
export async function clearDamaged(ctx: HolderContext, owner: string, ids: readonly string[]): Promise<void> {
  const marked = ids.filter((id) => ctx.tables.damaged.has(`${owner}/${id}`))
  if (marked.length === 0) return
  await ctx.index.transaction((tx) => {
    for (const id of marked) tx.delete(ctx.tables.damaged, `${owner}/${id}`)
  })
}

/** The code of a failed read of a stored blob, `ERR_INTEGRITY` (damaged) or `ERR_NOT_FOUND` (gone); any other failure is thrown on. */
export function unreadableCode(err: unknown): 'ERR_INTEGRITY' | 'ERR_NOT_FOUND' {
  const code = (err as { code?: string }).code
  if (code !== 'ERR_INTEGRITY' && code !== 'ERR_NOT_FOUND') throw err
  return code
}

/** A blob of the owner's read back damaged (`ERR_INTEGRITY`: its file is dropped) or gone: marked, so that it is sent again. */
export async function dropUnreadable(ctx: HolderContext, owner: string, store: BlobStore | undefined, id: string, code: 'ERR_INTEGRITY' | 'ERR_NOT_FOUND'): Promise<void> {
  if (code === 'ERR_INTEGRITY' && store !== undefined) await ctx.locks.run(`${owner}/${id}`, () => ctx.space.remove(store, owner, id))
  await markDamaged(ctx, owner, id)
}

/** Which of `ids` a store (if any) lacks, checked a bounded number at a time. */
export async function missingIn(store: BlobStore | undefined, ids: string[]): Promise<string[]> {
  if (store === undefined) return [...ids]
  const missing: string[] = []
  for (let at = 0; at < ids.length; at += 256) {
    const batch = ids.slice(at, at + 256)
    const present = await Promise.all(batch.map((id) => store.has(id)))
    batch.forEach((id, i) => present[i] === false && missing.push(id))
  }
  return missing
}

/** Blobs freed at once: each delete waits on a directory fsync, so a few overlap. */
const FREE_CONCURRENCY = 4

/** Frees blobs whose count reached zero, unless something re-referenced them meanwhile or a ref being recorded pinned them. */
export async function freeUnreferenced(ctx: HolderContext, owner: string, ids: Iterable<string>): Promise<void> {
  const store = await ctx.space.existing(owner)
  if (store === undefined) return
  const queue = [...ids]
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < queue.length) {
      const id = queue[next++]!
      const key = `${owner}/${id}`
      await ctx.locks.run(key, async () => {
        // A ref being recorded pinned it: it is about to be counted.
        if (!ctx.tables.counts.has(key) && !ctx.locks.pinned(key)) await ctx.space.remove(store, owner, id)
      })
    }
  }
  await Promise.all(Array.from({ length: Math.min(FREE_CONCURRENCY, queue.length) }, worker))
}
