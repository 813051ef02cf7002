// The holder's answers to the blob requests: put, get, prove, has, release.
import { createHash } from 'node:crypto'
import { clearDamaged, dropUnreadable, freeUnreferenced, markDamaged, missingIn, unreadableCode, type Served } from './holder-state.js'
import { IncomingBlobs } from './holder-writes.js'
import { hex64, hex64List, MAX_BLOB_BYTES, MAX_HAS_IDS, MAX_VERIFY_IDS, uint, type Exchange, type Header } from './wire.js'

export async function blobPut(served: Served, h: Header, ex: Exchange): Promise<void> {
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
    await ex.send({ ok: false, ...refusal })
    return
  }
  await ex.send({ ok: true, have: false })
  const size = uint(await ex.requireHeader(), 'size', MAX_BLOB_BYTES)
  // A batch of one: the same writes, checks and counting as a ref.store's blobs.
  const blobs = new IncomingBlobs(served)
  try {
    if (!(await blobs.add(cipherId, ex.body(size), size))) {
      await ex.send({ ok: false, code: 'ERR_INTEGRITY', message: 'the bytes do not hash to their cipherId' })
      return
    }
    await blobs.commit()
    blobs.keep()
  } finally {
    await blobs.abort()
  }
  await ex.send({ ok: true })
}

export async function blobGet({ ctx, owner }: Served, h: Header, ex: Exchange): Promise<void> {
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
    const code = unreadableCode(err)
    await ex.send({ ok: false, code, message: 'blob is damaged or gone' })
    await dropUnreadable(ctx, owner, store, cipherId, code)
    return
  }
  await ex.send({ ok: true, size: info.size })
  for (let r = first; r.done !== true; r = await pieces.next()) await ex.sendBytes(r.value)
}

/** Proves it holds a blob: SHA-256 of the owner's nonce and the blob's bytes, which it cannot compute without them. */
export async function blobProve({ ctx, owner }: Served, h: Header, ex: Exchange): Promise<void> {
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
    const code = unreadableCode(err)
    await dropUnreadable(ctx, owner, store, cipherId, code)
    await ex.send({ ok: false, code, message: 'blob is damaged or gone' })
    return
  }
  await ex.send({ ok: true, proof: hash.digest('hex') })
}

/**
 * Which of the blobs named the owner lacks here. With `verify` (a copy of the owner's failed a check), each one
 * present is read whole first: a damaged one is dropped and marked, and counts as missing, so that it is sent again.
 */
export async function blobHas({ ctx, owner }: Served, h: Header, ex: Exchange): Promise<void> {
  const verify = h.verify === true
  const ids = hex64List(h.cipherIds, 'cipherIds', verify ? MAX_VERIFY_IDS : MAX_HAS_IDS)
  await ex.expectEnd()
  const store = await ctx.space.existing(owner)
  const missing = await missingIn(store, ids)
  if (verify && store !== undefined) {
    const lacking = new Set(missing)
    const whole: string[] = []
    for (const id of ids) {
      if (lacking.has(id)) continue
      try {
        // The store checks the blob against its id as it reads it.
        for await (const _ of store.get(id));
        whole.push(id)
      } catch (err) {
        await dropUnreadable(ctx, owner, store, id, unreadableCode(err))
        missing.push(id)
      }
    }
    // A mark of damage on a blob that reads back whole is stale: it would have this copy verified again and again.
    await clearDamaged(ctx, owner, whole)
  }
  await ex.send({ ok: true, missing })
}

/** Drops blobs of the owner's that no ref uses (sent for a store that failed before its ref). */
export async function blobRelease({ ctx, owner, received }: Served, h: Header, ex: Exchange): Promise<void> {
  const ids = hex64List(h.cipherIds, 'cipherIds', MAX_HAS_IDS)
  await ex.expectEnd()
  await freeUnreferenced(ctx, owner, ids)
  for (const id of ids) received.delete(id)
  await ex.send({ ok: true })
}
