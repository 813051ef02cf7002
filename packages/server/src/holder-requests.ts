// The holder's answer to each request of the replication protocol, one function per operation.
// <owner> is always the authenticated node id of the connection the request came on: a peer can
// only ever touch its own replicas. Holders verify every blob against its cipherId, count
// references per owner, and keep tombstones so that a stale version never comes back.
import { createHash } from 'node:crypto'
import type { BlobStore, Index, IndexTable } from '@dcas/store'
import { PeerError } from './errors.js'
import type { KeyedLocks } from './locks.js'
import type { Logger } from './logger.js'
import type { ReplicaSpace } from './replica-space.js'
import { hex64, hex64List, MAX_BLOB_BYTES, MAX_HAS_IDS, MAX_LIST_PAGE, MAX_REF_CHUNKS, optionalHex64, PROTOCOL_VERSION, uint, type Exchange, type Header } from './wire.js'

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
}

const refIdsOf = (ref: ReplicaRef): string[] => (ref.deleted || ref.manifestCipherId === undefined ? [] : [...new Set([...(ref.cipherIds ?? []), ref.manifestCipherId])])

/**
 * Serves the requests one owner sends on one stream. `received` collects blobs put through this connection;
 * `onMalformed` is told when the peer broke the protocol (the caller closes its connection).
 */
export async function serveRequest(ctx: HolderContext, owner: string, ex: Exchange, received: Set<string>, onMalformed?: (err: Error) => void): Promise<void> {
  let header: Header | undefined
  try {
    header = await ex.readHeader()
    if (header === undefined) {
      // An empty request: finish our side too, so the stream frees its slot.
      await ex.end()
      return
    }
    if (header.v !== PROTOCOL_VERSION) {
      await ex.send({ ok: false, code: 'ERR_VERSION', message: `replication protocol ${String(header.v)} is not spoken here (${PROTOCOL_VERSION} is)` })
      await ex.end()
      return
    }
    const handler = HANDLERS[String(header.op)]
    if (handler === undefined) throw new PeerError(`unknown operation ${JSON.stringify(header.op)?.slice(0, 40)}`)
    await handler({ ctx, owner, received }, header, ex)
    await ex.end()
  } catch (err) {
    const code = (err as { code?: string }).code
    ctx.log.warn({ err, owner, op: header?.op }, 'replication request failed')
    try {
      if (code === 'ERR_PEER') await ex.send({ ok: false, code: 'ERR_PROTOCOL', message: (err as Error).message })
    } catch {
      // the stream is already gone
    }
    ex.reset(err instanceof Error ? err : undefined)
    if (code === 'ERR_PEER' && err instanceof Error) onMalformed?.(err)
  }
}

/** Who a request is served for: the holder's storage, the owner it came from, and the blobs its connection put. */
interface Served {
  ctx: HolderContext
  owner: string
  received: Set<string>
}

type Handler = (served: Served, h: Header, ex: Exchange) => Promise<void>


async function blobPut(served: Served, h: Header, ex: Exchange): Promise<void> {
  const { ctx, owner } = served
  const cipherId = hex64(h, 'cipherId')
  const existing = await ctx.space.existing(owner)
  if (existing !== undefined && (await existing.has(cipherId))) {
    await ex.send({ ok: true, have: true })
    await ex.expectEnd()
    return
  }
  // Refused before the bytes come (one blob may go past the quota: its size is told only next).
  const refusal = await ctx.space.blobRefusal(owner)
  if (refusal !== undefined) {
    await ex.send({ ok: false, code: 'ERR_QUOTA', message: refusal })
    return
  }
  await ex.send({ ok: true, have: false })
  const size = uint(await ex.requireHeader(), 'size', MAX_BLOB_BYTES)
  if (!(await keep(served, cipherId, ex.body(size), size))) {
    await ex.send({ ok: false, code: 'ERR_INTEGRITY', message: 'the bytes do not hash to their cipherId' })
    return
  }
  await ex.send({ ok: true })
}

async function blobGet({ ctx, owner }: Served, h: Header, ex: Exchange): Promise<void> {
  const cipherId = hex64(h, 'cipherId')
  await ex.expectEnd()
  const store = await ctx.space.existing(owner)
  const info = await store?.stat(cipherId)
  if (store === undefined || info === undefined) {
    await ex.send({ ok: false, code: 'ERR_NOT_FOUND', message: 'no such blob' })
    await markDamaged(ctx, owner, cipherId)
    return
  }
  // The store verifies the blob before its first byte, so a damaged blob fails here, before the header.
  const pieces = store.get(cipherId)[Symbol.asyncIterator]()
  let first: IteratorResult<Uint8Array>
  try {
    first = await pieces.next()
  } catch (err) {
    const code = (err as { code?: string }).code
    if (code !== 'ERR_INTEGRITY' && code !== 'ERR_NOT_FOUND') throw err
    await ex.send({ ok: false, code, message: 'blob is damaged or gone' })
    await ctx.locks.run(`${owner}/${cipherId}`, () => ctx.space.remove(store, owner, cipherId))
    await markDamaged(ctx, owner, cipherId)
    return
  }
  await ex.send({ ok: true, size: info.size })
  for (let r = first; r.done !== true; r = await pieces.next()) await ex.sendBytes(r.value)
}

/** Proves it holds a blob: SHA-256 of the owner's nonce and the blob's bytes, which it cannot compute without them. */
async function blobProve({ ctx, owner }: Served, h: Header, ex: Exchange): Promise<void> {
  const cipherId = hex64(h, 'cipherId')
  const nonce = hex64(h, 'nonce')
  await ex.expectEnd()
  const store = await ctx.space.existing(owner)
  const hash = createHash('sha256').update(Buffer.from(nonce, 'hex'))
  try {
    if (store === undefined || (await store.stat(cipherId)) === undefined) throw Object.assign(new Error('no such blob'), { code: 'ERR_NOT_FOUND' })
    // The store verifies the blob against its id as it reads it.
    for await (const piece of store.get(cipherId)) hash.update(piece)
  } catch (err) {
    const code = (err as { code?: string }).code
    if (code !== 'ERR_INTEGRITY' && code !== 'ERR_NOT_FOUND') throw err
    if (code === 'ERR_INTEGRITY' && store !== undefined) await ctx.locks.run(`${owner}/${cipherId}`, () => ctx.space.remove(store, owner, cipherId))
    await markDamaged(ctx, owner, cipherId)
    await ex.send({ ok: false, code, message: 'blob is damaged or gone' })
    return
  }
  await ex.send({ ok: true, proof: hash.digest('hex') })
}

async function markDamaged(ctx: HolderContext, owner: string, cipherId: string): Promise<void> {
  const key = `${owner}/${cipherId}`
  if (ctx.tables.counts.has(key)) await ctx.index.transaction((tx) => tx.put(ctx.tables.damaged, key, true))
}

async function blobHas({ ctx, owner }: Served, h: Header, ex: Exchange): Promise<void> {
  const ids = hex64List(h.cipherIds, 'cipherIds', MAX_HAS_IDS)
  await ex.expectEnd()
  await ex.send({ ok: true, missing: await missingIn(await ctx.space.existing(owner), ids) })
}

/** Which of `ids` a store (if any) lacks, checked a bounded number at a time. */
async function missingIn(store: BlobStore | undefined, ids: string[]): Promise<string[]> {
  if (store === undefined) return [...ids]
  const missing: string[] = []
  for (let at = 0; at < ids.length; at += 256) {
    const batch = ids.slice(at, at + 256)
    const present = await Promise.all(batch.map((id) => store.has(id)))
    batch.forEach((id, i) => present[i] === false && missing.push(id))
  }
  return missing
}

/** Drops blobs of the owner's that no ref uses (sent for a store that failed before its ref). */
async function blobRelease({ ctx, owner, received }: Served, h: Header, ex: Exchange): Promise<void> {
  const ids = hex64List(h.cipherIds, 'cipherIds', MAX_HAS_IDS)
  await ex.expectEnd()
  await ctx.locks.run(`owner:${owner}`, () => freeUnreferenced(ctx, owner, ids))
  for (const id of ids) received.delete(id)
  await ex.send({ ok: true })
}

/** Blobs freed at once: each delete waits on a directory fsync, so a few overlap. */
const FREE_CONCURRENCY = 4

/** Frees blobs whose count reached zero, unless something re-referenced them meanwhile. */
async function freeUnreferenced(ctx: HolderContext, owner: string, ids: Iterable<string>): Promise<void> {
  const store = await ctx.space.existing(owner)
  if (store === undefined) return
  const queue = [...ids]
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < queue.length) {
      const id = queue[next++]!
      const key = `${owner}/${id}`
      await ctx.locks.run(key, async () => {
        if (!ctx.tables.counts.has(key)) await ctx.space.remove(store, owner, id)
      })
    }
  }
  await Promise.all(Array.from({ length: Math.min(FREE_CONCURRENCY, queue.length) }, worker))
}

/** A ref an owner asks to record: its id, version, manifest and the chunk cipherIds it uses. */
interface RefRequest {
  refId: string
  version: number
  manifestCipherId: string
  cipherIds: string[]
}

/** Reads a ref's fields from `h` and its cipherIds from the body that follows (`count` ids, `bodySize` bytes of JSON, announced in `sizes`). */
async function readRef(h: Header, sizes: Header, ex: Exchange): Promise<RefRequest> {
  const refId = hex64(h, 'refId')
  const version = uint(h, 'version')
  const manifestCipherId = hex64(h, 'manifestCipherId')
  const count = uint(sizes, 'count', MAX_REF_CHUNKS)
  const bodySize = uint(sizes, 'bodySize', 2 + count * 67)
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(await ex.readBody(bodySize)).toString('utf8'))
  } catch (err) {
    if (err instanceof PeerError) throw err
    throw new PeerError('the cipherIds of a ref are not JSON', undefined, { cause: err })
  }
  return { refId, version, manifestCipherId, cipherIds: [...new Set(hex64List(parsed, 'cipherIds', count))] }
}

async function refPut(served: Served, h: Header, ex: Exchange): Promise<void> {
  await commitRef(served, await readRef(h, h, ex), ex)
}

/**
 * One store on one stream: its blobs as they come (`{ cipherId, size }` and the bytes, for each), then
 * `{ end: true, refId, version, manifestCipherId, count, bodySize }` and the ref's cipherIds; answered once, as `ref.put` is, when the
 * blobs and the ref are durable. A blob the owner believes this holder has comes as `{ cipherId }` alone
 * (no bytes): the answer lists it missing if it is not.
 */
async function refStore(served: Served, _h: Header, ex: Exchange): Promise<void> {
  const { ctx, owner } = served
  let refusal: string | undefined
  let items = 0
  for (;;) {
    const item = await ex.requireHeader()
    if (item.end === true) {
      const ref = await readRef(item, item, ex)
      if (refusal !== undefined) await ex.send({ ok: false, code: 'ERR_QUOTA', message: refusal })
      else await commitRef(served, ref, ex)
      return
    }
    if (++items > MAX_REF_CHUNKS + 1) throw new PeerError(`more than ${MAX_REF_CHUNKS + 1} blobs in one ref.store`)
    const cipherId = hex64(item, 'cipherId')
    if (item.size === undefined) continue
    const size = uint(item, 'size', MAX_BLOB_BYTES)
    refusal ??= await ctx.space.blobRefusal(owner)
    if (refusal !== undefined) {
      // Read and dropped: the answer at the end says why.
      for await (const _ of ex.part(size)) void _
      continue
    }
    if (!(await keep(served, cipherId, ex.part(size), size))) {
      await ex.send({ ok: false, code: 'ERR_INTEGRITY', message: 'the bytes do not hash to their cipherId' })
      ex.reset()
      return
    }
  }
}

/** Stores a blob the owner sent (or drops the bytes when it is here already); `false` when they do not hash to `cipherId`. */
async function keep({ ctx, owner, received }: Served, cipherId: string, bytes: AsyncIterable<Uint8Array>, size: number): Promise<boolean> {
  const store = await ctx.space.store(owner)
  const key = `${owner}/${cipherId}`
  try {
    const added = await ctx.locks.run(key, async () => {
      if (await store.has(cipherId)) {
        for await (const _ of bytes) void _
        return false
      }
      await store.putExpected(cipherId, bytes)
      return true
    })
    if (added) ctx.space.bytes(owner, size)
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_INTEGRITY') throw err
    return false
  }
  received.add(cipherId)
  if (ctx.tables.damaged.has(key)) await ctx.index.transaction((tx) => tx.delete(ctx.tables.damaged, key))
  return true
}

/** Records a ref once every blob it names is here: answers ok, ERR_STALE, ERR_QUOTA or ERR_MISSING. */
async function commitRef({ ctx, owner, received }: Served, ref: RefRequest, ex: Exchange): Promise<void> {
  const { refId, version, manifestCipherId, cipherIds } = ref
  const key = `${owner}/${refId}`
  await ctx.locks.run(`owner:${owner}`, async () => {
    const existing = ctx.tables.refs.get(key)
    if (existing !== undefined && (existing.version > version || (existing.deleted && existing.version >= version))) {
      await ex.send({ ok: false, code: 'ERR_STALE', version: existing.version })
      return
    }
    const refusal = existing === undefined ? ctx.space.refRefusal(owner) : undefined
    if (refusal !== undefined) {
      await ex.send({ ok: false, code: 'ERR_QUOTA', message: refusal })
      return
    }
    const next: ReplicaRef = { version, deleted: false, manifestCipherId, cipherIds, updatedAt: Date.now() }
    const wanted = refIdsOf(next)
    const missing = await missingIn(await ctx.space.existing(owner), wanted)
    if (missing.length > 0) {
      await ex.send({ ok: false, code: 'ERR_MISSING', missing: missing.slice(0, MAX_HAS_IDS) })
      return
    }
    const sameVersion = existing !== undefined && !existing.deleted && existing.version === version && existing.manifestCipherId === manifestCipherId
    if (!sameVersion) {
      const previous = existing === undefined ? [] : refIdsOf(existing)
      const freed = await ctx.index.transaction((tx) => {
        tx.put(ctx.tables.refs, key, next)
        for (const id of wanted) tx.add(ctx.tables.counts, `${owner}/${id}`, 1)
        return previous.filter((id) => tx.add(ctx.tables.counts, `${owner}/${id}`, -1) === 0)
      })
      if (existing === undefined) ctx.space.refs(owner, 1)
      await freeUnreferenced(ctx, owner, freed)
    }
    // Referenced now: nothing to sweep when the connection closes.
    for (const id of wanted) received.delete(id)
    await ex.send({ ok: true })
  })
}

async function refGet({ ctx, owner }: Served, h: Header, ex: Exchange): Promise<void> {
  const refId = hex64(h, 'refId')
  await ex.expectEnd()
  const ref = ctx.tables.refs.get(`${owner}/${refId}`)
  await ex.send(ref === undefined ? { ok: true } : { ok: true, ref: describe(ctx, owner, refId, ref) })
}

async function refDelete({ ctx, owner }: Served, h: Header, ex: Exchange): Promise<void> {
  const refId = hex64(h, 'refId')
  const version = uint(h, 'version')
  const deletedAt = h.deletedAt === undefined ? undefined : uint(h, 'deletedAt')
  const proof = optionalHex64(h, 'proof')
  await ex.expectEnd()
  const key = `${owner}/${refId}`
  const refusal = await ctx.locks.run(`owner:${owner}`, async () => {
    const existing = ctx.tables.refs.get(key)
    if (existing !== undefined && existing.version >= version && (existing.deleted || existing.version > version)) return undefined
    if (existing === undefined) {
      const refused = ctx.space.refRefusal(owner)
      if (refused !== undefined) return refused
    }
    const freed = await ctx.index.transaction((tx) => {
      tx.put(ctx.tables.refs, key, { version, deleted: true, ...(deletedAt === undefined ? {} : { writtenAt: deletedAt }), ...(proof === undefined ? {} : { proof }), updatedAt: Date.now() })
      return existing === undefined ? [] : refIdsOf(existing).filter((id) => tx.add(ctx.tables.counts, `${owner}/${id}`, -1) === 0)
    })
    if (existing === undefined) ctx.space.refs(owner, 1)
    await freeUnreferenced(ctx, owner, freed)
    return undefined
  })
  await ex.send(refusal === undefined ? { ok: true } : { ok: false, code: 'ERR_QUOTA', message: refusal })
}

async function refList({ ctx, owner }: Served, h: Header, ex: Exchange): Promise<void> {
  const after = optionalHex64(h, 'after')
  const limit = Math.max(1, uint(h, 'limit', MAX_LIST_PAGE))
  await ex.expectEnd()
  const prefix = `${owner}/`
  const entries: Header[] = []
  const anyDamage = hasDamage(ctx, owner)
  for (const [key, ref] of ctx.tables.refs.entries({ prefix, limit, ...(after === undefined ? {} : { after: prefix + after }) })) {
    entries.push(describe(ctx, owner, key.slice(prefix.length), ref, anyDamage))
  }
  await ex.send({ ok: true, entries })
}

/** Whether any of the owner's blobs is marked damaged (usually not, which spares a lookup per blob). */
function hasDamage(ctx: HolderContext, owner: string): boolean {
  for (const _ of ctx.tables.damaged.entries({ prefix: `${owner}/`, limit: 1 })) return true
  return false
}

function describe(ctx: HolderContext, owner: string, refId: string, ref: ReplicaRef, anyDamage = hasDamage(ctx, owner)): Header {
  if (ref.deleted) return { refId, version: ref.version, deleted: true, ...(ref.writtenAt === undefined ? {} : { writtenAt: ref.writtenAt }), ...(ref.proof === undefined ? {} : { proof: ref.proof }) }
  const damaged = anyDamage && refIdsOf(ref).some((id) => ctx.tables.damaged.has(`${owner}/${id}`))
  return { refId, version: ref.version, deleted: false, manifestCipherId: ref.manifestCipherId, ...(damaged ? { damaged: true } : {}) }
}

const HANDLERS: Partial<Record<string, Handler>> = {
  'blob.put': blobPut,
  'blob.get': blobGet,
  'blob.has': blobHas,
  'blob.release': blobRelease,
  'blob.prove': blobProve,
  'ref.put': refPut,
  'ref.store': refStore,
  'ref.get': refGet,
  'ref.delete': refDelete,
  'ref.list': refList,
}

/** Frees the blobs an owner put through a connection that closed without any ref taking them up. */
export async function sweepReceived(ctx: HolderContext, owner: string, received: Set<string>): Promise<void> {
  if (received.size === 0) return
  await ctx.locks.run(`owner:${owner}`, () => freeUnreferenced(ctx, owner, received))
}
