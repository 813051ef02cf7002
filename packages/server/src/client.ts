// The owner's side of the replication protocol: one function per request, each on its own stream.
// Every response is checked before it is trusted; a holder's bytes are verified by the caller.
import type { Connection } from '@dcas/p2p'
import { PeerError } from './errors.js'
import type { Tombstone } from './secrets.js'
import { checkResponse, Exchange, hex64, hex64List, isHex64, MAX_BLOB_BYTES, MAX_HAS_IDS, MAX_LIST_PAGE, MAX_VERIFY_IDS, PROTOCOL_VERSION, sizeOf, uint, type Bytes, type Header } from './wire.js'

/** A holder's record of one of the owner's refs: live, or deleted (a tombstone). */
export interface RemoteRef {
  refId: string
  version: number
  deleted: boolean
  manifestCipherId?: string
  /** The holder found one of this ref's blobs missing or damaged. */
  damaged?: boolean
  /** For a tombstone: when the owner deleted it (owner's clock, ms since the epoch), when the holder knows. */
  writtenAt?: number
  /** For a tombstone: the owner's proof that it made this delete (see `isOwnTombstone`), as the holder keeps it. */
  proof?: string
}

/** Runs one request on a fresh stream; the stream is reset if `fn` fails, half-closed otherwise. */
export async function exchange<T>(conn: Connection, header: Header, signal: AbortSignal | undefined, fn: (ex: Exchange) => Promise<T>): Promise<T> {
  const ex = new Exchange(await conn.openStream(signal === undefined ? undefined : { signal }))
  const onAbort = (): void => ex.reset(new PeerError('request aborted', undefined, { cause: signal?.reason }))
  signal?.addEventListener('abort', onAbort, { once: true })
  try {
    await ex.send({ v: PROTOCOL_VERSION, ...header }, signal)
    return await fn(ex)
  } catch (err) {
    ex.reset(err instanceof Error ? err : undefined)
    throw err
  } finally {
    signal?.removeEventListener('abort', onAbort)
  }
}

/** Sends a blob unless the holder has it; `produce` is called only when the bytes are needed. Resolves to whether they were sent. */
export async function putBlob(conn: Connection, cipherId: string, produce: () => Promise<Bytes> | Bytes, signal?: AbortSignal): Promise<boolean> {
  return exchange(conn, { op: 'blob.put', cipherId }, signal, async (ex) => {
    const first = checkResponse(await ex.requireHeader())
    if (first.have === true) {
      await ex.end()
      await ex.expectEnd()
      return false
    }
    const bytes = await produce()
    await ex.send({ size: sizeOf(bytes) }, signal)
    await ex.sendBytes(bytes, signal)
    await ex.end()
    checkResponse(await ex.requireHeader())
    await ex.expectEnd()
    return true
  })
}

/** Fetches a blob's bytes (at most `maxSize`), in the pieces they arrived in; the caller verifies them against `cipherId`. */
export async function getBlob(conn: Connection, cipherId: string, maxSize: number, signal?: AbortSignal): Promise<Uint8Array[]> {
  return exchange(conn, { op: 'blob.get', cipherId }, signal, async (ex) => {
    await ex.end()
    const header = checkResponse(await ex.requireHeader())
    const size = uint(header, 'size', Math.min(maxSize, MAX_BLOB_BYTES))
    // Kept as the pieces they arrived in: the hash and the decryption take them so, and nothing joins them.
    const pieces: Uint8Array[] = []
    for await (const piece of ex.body(size)) pieces.push(piece)
    return pieces
  })
}

/**
 * Which of `cipherIds` the holder lacks, a page per request (`signalOf` gives each request its signal). With
 * `verifyPage` above 0, the holder also reads each one it has, that many a request (at most MAX_VERIFY_IDS), and
 * counts those it finds damaged (and drops) as missing: for a copy known to have failed a check.
 */
export async function missingBlobs(conn: Connection, cipherIds: string[], signalOf: () => AbortSignal, verifyPage = 0): Promise<string[]> {
  const missing: string[] = []
  const verify = verifyPage > 0
  const pageSize = verify ? Math.min(verifyPage, MAX_VERIFY_IDS) : MAX_HAS_IDS
  for (let at = 0; at < cipherIds.length; at += pageSize) {
    const batch = cipherIds.slice(at, at + pageSize)
    const page = await exchange(conn, { op: 'blob.has', cipherIds: batch, ...(verify ? { verify: true } : {}) }, signalOf(), async (ex) => {
      await ex.end()
      const header = checkResponse(await ex.requireHeader())
      await ex.expectEnd()
      return hex64List(header.missing, 'missing', batch.length)
    })
    const asked = new Set(batch)
    for (const id of page) if (asked.has(id)) missing.push(id)
  }
  return missing
}

/** Asks the holder to drop those of `cipherIds` that no ref of ours uses (blobs of a store that failed before its ref). */
export async function releaseBlobs(conn: Connection, cipherIds: string[], signal?: AbortSignal): Promise<void> {
  for (let at = 0; at < cipherIds.length; at += MAX_HAS_IDS) {
    await exchange(conn, { op: 'blob.release', cipherIds: cipherIds.slice(at, at + MAX_HAS_IDS) }, signal, async (ex) => {
      await ex.end()
      checkResponse(await ex.requireHeader())
      await ex.expectEnd()
    })
  }
}

/** Asks the holder to prove it holds a blob: resolves to SHA-256(nonce ‖ blob), as hex. */
export async function proveBlob(conn: Connection, cipherId: string, nonce: string, signal?: AbortSignal): Promise<string> {
  return exchange(conn, { op: 'blob.prove', cipherId, nonce }, signal, async (ex) => {
    await ex.end()
    const header = checkResponse(await ex.requireHeader())
    await ex.expectEnd()
    return hex64(header, 'proof')
  })
}

/** What the owner asks a holder to record for one ref. */
export interface RefPut {
  refId: string
  version: number
  manifestCipherId: string
  /** Distinct chunk cipher ids the ref uses (the manifest's own id not included). */
  cipherIds: string[]
}

/** Every blob a ref uses: its chunks' cipher ids, then its manifest's. */
export function blobIdsOf(ref: RefPut): string[] {
  return [...ref.cipherIds, ref.manifestCipherId]
}

/**
 * One store's blobs and ref sent to a holder on one stream (`ref.store`): blobs as they are made, the ref at
 * the end, one answer for all of it once it is durable there. No round trip per blob.
 */
export class RefStream {
  readonly #ex: Exchange

  private constructor(ex: Exchange) {
    this.#ex = ex
  }

  /** Opens the stream (the request header goes out at once). */
  static async open(conn: Connection, signal?: AbortSignal): Promise<RefStream> {
    const ex = new Exchange(await conn.openStream(signal === undefined ? undefined : { signal }))
    try {
      await ex.send({ v: PROTOCOL_VERSION, op: 'ref.store' }, signal)
    } catch (err) {
      ex.reset(err instanceof Error ? err : undefined)
      throw err
    }
    return new RefStream(ex)
  }

  /** Sends one blob's bytes; without `bytes`, names a blob the holder should have already (it is listed missing at the end if not). */
  async blob(cipherId: string, bytes: Bytes | undefined, signal?: AbortSignal): Promise<void> {
    if (bytes === undefined) return this.#ex.send({ cipherId }, signal)
    await this.#ex.send({ cipherId, size: sizeOf(bytes) }, signal)
    await this.#ex.sendBytes(bytes, signal)
  }

  /** Sends the ref and waits for the one answer. */
  async end(ref: RefPut, signal?: AbortSignal): Promise<RefPutResult> {
    const body = Buffer.from(JSON.stringify(ref.cipherIds), 'utf8')
    try {
      await this.#ex.send({ end: true, refId: ref.refId, version: ref.version, manifestCipherId: ref.manifestCipherId, count: ref.cipherIds.length, bodySize: body.length }, signal)
      await this.#ex.sendBytes(body, signal)
      await this.#ex.end()
      return await readRefAnswer(this.#ex)
    } catch (err) {
      this.abort(err instanceof Error ? err : undefined)
      throw err
    }
  }

  /** Abandons the stream (the holder keeps none of it past the connection's sweep). */
  abort(err?: Error): void {
    this.#ex.reset(err)
  }
}

/** The outcome of {@link putRef}: stored, stale (the holder knows a newer version or a later delete), or blobs missing. */
export type RefPutResult = { ok: true } | { ok: false; stale: true; version: number } | { ok: false; stale: false; missing: string[] }

/** Records a ref on the holder once every blob it names is there. */
export async function putRef(conn: Connection, ref: RefPut, signal?: AbortSignal): Promise<RefPutResult> {
  const body = Buffer.from(JSON.stringify(ref.cipherIds), 'utf8')
  // The object's size and write time stay inside its encrypted manifest: a holder is not told them.
  const header = { op: 'ref.put', refId: ref.refId, version: ref.version, manifestCipherId: ref.manifestCipherId, count: ref.cipherIds.length, bodySize: body.length }
  return exchange(conn, header, signal, async (ex) => {
    await ex.sendBytes(body, signal)
    await ex.end()
    return readRefAnswer(ex)
  })
}

/** The holder's answer to a ref: stored, stale, or blobs missing; any other error throws. */
async function readRefAnswer(ex: Exchange): Promise<RefPutResult> {
  const res = await ex.requireHeader()
  await ex.expectEnd()
  if (res.ok === true) return { ok: true }
  if (res.code === 'ERR_STALE') return { ok: false, stale: true, version: uint(res, 'version') }
  if (res.code === 'ERR_MISSING') return { ok: false, stale: false, missing: hex64List(res.missing, 'missing', MAX_HAS_IDS) }
  checkResponse(res)
  throw new PeerError('unreachable')
}

/** The holder's record of a ref, if any. */
export async function getRef(conn: Connection, refId: string, signal?: AbortSignal): Promise<RemoteRef | undefined> {
  return exchange(conn, { op: 'ref.get', refId }, signal, async (ex) => {
    await ex.end()
    const header = checkResponse(await ex.requireHeader())
    await ex.expectEnd()
    return header.ref === undefined ? undefined : parseRemoteRef(header.ref)
  })
}

/** Asks the holder to drop its copy of a ref, up to `version`, keeping no tombstone: the copy moved elsewhere. */
export async function dropRef(conn: Connection, refId: string, version: number, signal?: AbortSignal): Promise<void> {
  await exchange(conn, { op: 'ref.drop', refId, version }, signal, async (ex) => {
    await ex.end()
    checkResponse(await ex.requireHeader())
    await ex.expectEnd()
  })
}

/** Deletes a ref (up to its `version`) on the holder, which keeps the tombstone, proof included. */
export async function deleteRef(conn: Connection, tomb: Tombstone, signal?: AbortSignal): Promise<void> {
  await exchange(conn, { op: 'ref.delete', refId: tomb.refId, version: tomb.version, deletedAt: tomb.deletedAt, proof: tomb.proof }, signal, async (ex) => {
    await ex.end()
    checkResponse(await ex.requireHeader())
    await ex.expectEnd()
  })
}

/** Every ref (live or deleted) the holder keeps for us, page by page in refId order; each page under its own `signalFor()`. */
export async function* listRefs(conn: Connection, signalFor: () => AbortSignal): AsyncGenerator<RemoteRef> {
  let after: string | undefined
  for (;;) {
    const page = await exchange(conn, { op: 'ref.list', limit: MAX_LIST_PAGE, ...(after === undefined ? {} : { after }) }, signalFor(), async (ex) => {
      await ex.end()
      const header = checkResponse(await ex.requireHeader())
      await ex.expectEnd()
      if (!Array.isArray(header.entries) || header.entries.length > MAX_LIST_PAGE) throw new PeerError('ref.list answered a malformed page')
      return header.entries.map(parseRemoteRef)
    })
    for (const entry of page) {
      if (after !== undefined && entry.refId <= after) throw new PeerError('ref.list went backwards')
      after = entry.refId
      yield entry
    }
    if (page.length < MAX_LIST_PAGE) return
  }
}

function parseRemoteRef(value: unknown): RemoteRef {
  if (typeof value !== 'object' || value === null) throw new PeerError('malformed ref entry')
  const h = value as Header
  const ref: RemoteRef = { refId: hex64(h, 'refId'), version: uint(h, 'version'), deleted: h.deleted === true }
  if (!ref.deleted) {
    ref.manifestCipherId = hex64(h, 'manifestCipherId')
    if (h.damaged === true) ref.damaged = true
  } else {
    if (h.writtenAt !== undefined) ref.writtenAt = uint(h, 'writtenAt')
    if (h.manifestCipherId !== undefined && !isHex64(h.manifestCipherId)) throw new PeerError('malformed ref entry')
    if (h.proof !== undefined) ref.proof = hex64(h, 'proof')
  }
  return ref
}
