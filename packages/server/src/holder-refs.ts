// The holder's answers to the ref requests: put, store (blobs and ref on one stream), get, delete,
// list. Tombstones are kept, so that a stale version never comes back.
import { PeerError } from './errors.js'
import { freeUnreferenced, refIdsOf, type HolderContext, type ReplicaRef, type Served } from './holder-state.js'
import { IncomingBlobs } from './holder-writes.js'
import type { Refusal } from './replica-space.js'
import { hex64, hex64List, MAX_BLOB_BYTES, MAX_HAS_IDS, MAX_LIST_PAGE, MAX_REF_CHUNKS, optionalHex64, uint, type Exchange, type Header } from './wire.js'

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

export async function refPut(served: Served, h: Header, ex: Exchange): Promise<void> {
  await commitRef(served, await readRef(h, h, ex), ex)
}

/**
 * One store on one stream: its blobs as they come (`{ cipherId, size }` and the bytes, for each), then
 * `{ end: true, refId, version, manifestCipherId, count, bodySize }` and the ref's cipherIds; answered once, as `ref.put` is, when the
 * blobs and the ref are durable. A blob the owner believes this holder has comes as `{ cipherId }` alone
 * (no bytes): the answer lists it missing if it is not. The blobs are written and made durable a group at a
 * time as they come (see {@link IncomingBlobs}), all of them before the ref is committed; a request refused or
 * broken off before its ref keeps none of its blobs.
 */
export async function refStore(served: Served, _h: Header, ex: Exchange): Promise<void> {
  const { ctx, owner } = served
  const blobs = new IncomingBlobs(served)
  try {
    let refusal: Refusal | undefined
    let items = 0
    for (;;) {
      const item = await ex.requireHeader()
      if (item.end === true) {
        const ref = await readRef(item, item, ex)
        if (refusal !== undefined) {
          await ex.send({ ok: false, ...refusal })
          return
        }
        await blobs.commit()
        blobs.keep()
        await commitRef(served, ref, ex)
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
      if (!(await blobs.add(cipherId, ex.part(size), size))) {
        await ex.send({ ok: false, code: 'ERR_INTEGRITY', message: 'the bytes do not hash to their cipherId' })
        ex.reset()
        return
      }
    }
  } finally {
    // Whatever was not committed goes, and is no longer counted.
    await blobs.abort()
  }
}

/**
 * One change of one ref at a time (a put, a delete, a drop): the stores of an owner's different refs commit
 * side by side, so that the index groups their commits.
 */
const refLock = (key: string): string => `ref:${key}`

/**
 * Counts a new ref of `owner` against its quota before it is recorded, so that concurrent requests for other
 * refs see it; the quota's refusal instead when there is no room. A ref not recorded after all is uncounted.
 */
function reserveRef(ctx: HolderContext, owner: string): string | undefined {
  const refusal = ctx.space.refRefusal(owner)
  if (refusal === undefined) ctx.space.refs(owner, 1)
  return refusal
}

/**
 * Which of `ids` the owner lacks here, each looked at under its lock once pinned (a free in progress ends
 * first, and none starts after the pin): what is here then stays until the caller unpins.
 */
async function pinPresent(ctx: HolderContext, owner: string, ids: string[]): Promise<string[]> {
  const store = await ctx.space.existing(owner)
  const missing: string[] = []
  for (const id of ids) {
    const key = `${owner}/${id}`
    ctx.locks.pin(key)
    if (!(await ctx.locks.run(key, async () => (await store?.has(id)) === true))) missing.push(id)
  }
  return missing
}

/** Records a ref once every blob it names is here: answers ok, ERR_STALE, ERR_QUOTA or ERR_MISSING. */
async function commitRef({ ctx, owner, received }: Served, ref: RefRequest, ex: Exchange): Promise<void> {
  const { refId, version, manifestCipherId, cipherIds } = ref
  const key = `${owner}/${refId}`
  await ctx.locks.run(refLock(key), async () => {
    const existing = ctx.tables.refs.get(key)
    if (existing !== undefined && (existing.version > version || (existing.deleted && existing.version >= version))) {
      await ex.send({ ok: false, code: 'ERR_STALE', version: existing.version })
      return
    }
    const refusal = existing === undefined ? reserveRef(ctx, owner) : undefined
    if (refusal !== undefined) {
      await ex.send({ ok: false, code: 'ERR_QUOTA', message: refusal })
      return
    }
    let recorded = false
    const next: ReplicaRef = { version, deleted: false, manifestCipherId, cipherIds, updatedAt: Date.now() }
    const wanted = refIdsOf(next)
    let freed: string[] = []
    try {
      const missing = await pinPresent(ctx, owner, wanted)
      if (missing.length > 0) {
        await ex.send({ ok: false, code: 'ERR_MISSING', missing: missing.slice(0, MAX_HAS_IDS) })
        return
      }
      const sameVersion = existing !== undefined && !existing.deleted && existing.version === version && existing.manifestCipherId === manifestCipherId
      if (!sameVersion) {
        const previous = existing === undefined ? [] : refIdsOf(existing)
        freed = await ctx.index.transaction((tx) => {
          tx.put(ctx.tables.refs, key, next)
          for (const id of wanted) tx.add(ctx.tables.counts, `${owner}/${id}`, 1)
          return previous.filter((id) => tx.add(ctx.tables.counts, `${owner}/${id}`, -1) === 0)
        })
      }
      recorded = true
    } finally {
      for (const id of wanted) ctx.locks.unpin(`${owner}/${id}`)
      if (!recorded && existing === undefined) ctx.space.refs(owner, -1)
    }
    await freeUnreferenced(ctx, owner, freed)
    // Referenced now: nothing to sweep when the connection closes.
    for (const id of wanted) received.delete(id)
    await ex.send({ ok: true })
    if (existing === undefined || existing.deleted) ctx.onRefsChanged?.(owner, 1)
  })
}

export async function refGet({ ctx, owner }: Served, h: Header, ex: Exchange): Promise<void> {
  const refId = hex64(h, 'refId')
  await ex.expectEnd()
  const ref = ctx.tables.refs.get(`${owner}/${refId}`)
  await ex.send(ref === undefined ? { ok: true } : { ok: true, ref: describe(ctx, owner, refId, ref) })
}

export async function refDelete({ ctx, owner }: Served, h: Header, ex: Exchange): Promise<void> {
  const refId = hex64(h, 'refId')
  const version = uint(h, 'version')
  const deletedAt = h.deletedAt === undefined ? undefined : uint(h, 'deletedAt')
  const proof = optionalHex64(h, 'proof')
  await ex.expectEnd()
  const key = `${owner}/${refId}`
  const refusal = await ctx.locks.run(refLock(key), async () => {
    const existing = ctx.tables.refs.get(key)
    if (existing !== undefined && existing.version >= version && (existing.deleted || existing.version > version)) return undefined
    if (existing === undefined) {
      const refused = reserveRef(ctx, owner)
      if (refused !== undefined) return refused
    }
    let freed: string[]
    try {
      freed = await ctx.index.transaction((tx) => {
        tx.put(ctx.tables.refs, key, { version, deleted: true, ...(deletedAt === undefined ? {} : { writtenAt: deletedAt }), ...(proof === undefined ? {} : { proof }), updatedAt: Date.now() })
        return existing === undefined ? [] : refIdsOf(existing).filter((id) => tx.add(ctx.tables.counts, `${owner}/${id}`, -1) === 0)
      })
    } catch (err) {
      if (existing === undefined) ctx.space.refs(owner, -1)
      throw err
    }
    await freeUnreferenced(ctx, owner, freed)
    if (existing !== undefined && !existing.deleted) ctx.onRefsChanged?.(owner, -1)
    return undefined
  })
  await ex.send(refusal === undefined ? { ok: true } : { ok: false, code: 'ERR_QUOTA', message: refusal })
}

/** The owner moved its copy elsewhere: the ref goes (no tombstone: it was not deleted) with the blobs no other ref uses. */
export async function refDrop({ ctx, owner }: Served, h: Header, ex: Exchange): Promise<void> {
  const refId = hex64(h, 'refId')
  const version = uint(h, 'version')
  await ex.expectEnd()
  const key = `${owner}/${refId}`
  await ctx.locks.run(refLock(key), async () => {
    const existing = ctx.tables.refs.get(key)
    if (existing === undefined || existing.deleted || existing.version > version) return
    const freed = await ctx.index.transaction((tx) => {
      tx.delete(ctx.tables.refs, key)
      return refIdsOf(existing).filter((id) => tx.add(ctx.tables.counts, `${owner}/${id}`, -1) === 0)
    })
    ctx.space.refs(owner, -1)
    await freeUnreferenced(ctx, owner, freed)
    ctx.onRefsChanged?.(owner, -1)
  })
  await ex.send({ ok: true })
}

export async function refList({ ctx, owner }: Served, h: Header, ex: Exchange): Promise<void> {
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
