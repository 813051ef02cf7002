// The catalogue of the owner's keys and their versions: resolving a key to its ref and manifest,
// recovering refs this node lost from the copies its peers hold (checked against the owner's own
// keys), the deletes peers report, and the version floors that keep new versions above them.
import { setTimeout as delay } from 'node:timers/promises'
import type { Connection } from '@dcas/p2p'
import type { RefRecord } from '@dcas/store'
import { maxCipherBytes, recipientsIdOf, type BlobCipher } from './cipher.js'
import { getRef, type RemoteRef } from './client.js'
import type { Deadlines } from './deadlines.js'
import { codeOf, NotFoundError, UnauthenticatedError, UnavailableError } from './errors.js'
import type { Fetcher } from './fetcher.js'
import { metaOf, type LocalStore, type RefMeta } from './local.js'
import type { HeldKey, KeyLocks } from './locks.js'
import type { Logger } from './logger.js'
import { decodeManifest, encodeManifest, MAX_MANIFEST_BYTES, sha256Hex, type Manifest } from './manifest.js'
import type { Placement } from './placement.js'
import type { Retriever } from './retriever.js'
import { isOwnTombstone, refIdOf, type OwnerKeys, type Tombstone } from './secrets.js'
import type { ObjectStat } from './types.js'

/** Times a recovery asks the peers when some could not answer at all (a connection replaced, a timeout). */
const RECOVER_ATTEMPTS = 3

/** A peer's copy of one of this node's manifests, decrypted and checked. */
export interface RemoteManifest {
  manifest: Manifest
  manifestId: string
  plain: Buffer
}

export interface CatalogueOptions {
  keys: OwnerKeys
  local: LocalStore
  cipher: BlobCipher
  fetcher: Fetcher
  retriever: Retriever
  placement: Placement
  keyLocks: KeyLocks
  deadlines: Deadlines
  log: Logger
}

/** Keys, versions and deletes: what this node knows and what it can learn back from its peers. */
export class Catalogue {
  readonly #o: CatalogueOptions

  constructor(options: CatalogueOptions) {
    this.#o = options
  }

  /** The ref id of a key. */
  refIdOf(key: string): string {
    return refIdOf(this.#o.keys, key)
  }

  /** The version a new write of `key` gets: above any this node or a peer has seen, so a key deleted before this node lost its index is taken again. */
  nextVersion(key: string, refId: string): number {
    const { index, tables } = this.#o.local
    return Math.max(index.refs.get(key)?.version ?? 0, index.tombstones.get(key)?.version ?? 0, tables.versionFloors.get(refId) ?? 0) + 1
  }

  /** The local state of `key`'s current version, `undefined` when it has none here. */
  stat(key: string): ObjectStat | undefined {
    const record = this.#o.local.index.refs.get(key)
    return record === undefined ? undefined : this.statOf(key, record)
  }

  /** The state of one version of `key`, from its ref record. */
  statOf(key: string, record: RefRecord): ObjectStat {
    const { index } = this.#o.local
    const meta = metaOf(record)
    const replicas: string[] = []
    for (const [k, state] of index.peerState.entries({ prefix: `${meta.refId}/` })) {
      if (state.state === 'held' && state.meta?.version === record.version) replicas.push(k.slice(meta.refId.length + 1))
    }
    return { key, size: record.size, sha256: record.sha256, chunks: meta.chunkCount, version: record.version, updatedAt: record.updatedAt, replicas, metadata: meta.metadata ?? {} }
  }

  /** The key's ref and manifest: local, else recovered from peers. */
  async resolve(key: string, signal: AbortSignal, held?: HeldKey): Promise<{ record: RefRecord; manifest: Manifest }> {
    const { index } = this.#o.local
    let record = index.refs.get(key)
    if (record === undefined) {
      if (index.tombstones.has(key)) throw new NotFoundError(`"${key}" was deleted`)
      record = await this.recover(key, signal, held)
    }
    const manifest = await this.#o.retriever.manifest(record, signal)
    if (manifest.key !== key || manifest.version !== record.version) throw new UnavailableError(`the manifest of "${key}" does not match its ref`)
    return { record, manifest }
  }

  /**
   * Asks the peers for a ref this node lost; installs the newest live version unless a delete is newer.
   * Fails with ERR_NOT_FOUND when none could be installed and a peer holds this owner's proven delete.
   */
  async recover(key: string, signal: AbortSignal, held?: HeldKey): Promise<RefRecord> {
    const refId = this.refIdOf(key)
    const { placement, deadlines } = this.#o
    let answers: Array<RemoteRef | undefined> = []
    for (let attempt = 1; ; attempt++) {
      let failed = 0
      // The peers it is placed on are asked first; the others (a copy may have stayed there) only if none of them knows it.
      const placed = new Set(placement.placed(refId))
      const order = await placement.readOrder(refId, { signal })
      const ask = (conns: typeof order): Promise<Array<RemoteRef | undefined>> =>
        Promise.all(
          conns.map((conn) =>
            getRef(conn, refId, deadlines.request(signal)).catch(() => {
              failed++
              return undefined
            }),
          ),
        )
      answers = await ask(order.filter((c) => placed.has(c.remoteNodeId)))
      if (answers.every((a) => a === undefined)) answers = await ask(order.filter((c) => !placed.has(c.remoteNodeId)))
      // A peer that could not answer (its connection replaced by a newer one meanwhile, a timeout) is asked
      // again, a few times, before the key counts as unknown to every peer.
      if (answers.some((a) => a !== undefined) || failed === 0 || attempt >= RECOVER_ATTEMPTS) break
      await delay(250 * attempt, undefined, { signal })
    }
    const live: RemoteRef[] = []
    let deleted = false
    for (const ref of answers) {
      if (ref === undefined) continue
      if (!ref.deleted) live.push(ref)
      else {
        const tomb = this.ownTombstone(ref)
        if (tomb !== undefined) await this.noteRemoteTombstone(tomb)
        deleted ||= tomb !== undefined
      }
    }
    // Newest first; a version no peer can back with its manifest (a lying peer) gives way to the next.
    let failure: Error | undefined
    for (const ref of live.sort((x, y) => y.version - x.version)) {
      try {
        const installed = await this.install(refId, ref, signal, held)
        if (installed !== undefined && installed.key === key) return installed.record
        // Installed meanwhile by catch-up with a peer (as new, or newer): that version is the key's now.
        const meanwhile = this.#o.local.index.refs.get(key)
        if (installed === undefined && meanwhile !== undefined) return meanwhile
        throw new NotFoundError(`no object is stored under "${key}"`)
      } catch (err) {
        if (signal.aborted || !(err instanceof Error) || codeOf(err) === 'ERR_NOT_FOUND') throw err
        failure = err
      }
    }
    // This owner's proven delete stands where no live version could be installed (a peer's forgery is no version).
    if (deleted) throw new NotFoundError(`"${key}" was deleted`, failure === undefined ? undefined : { cause: failure })
    if (failure !== undefined) throw failure
    throw new NotFoundError(`no object is stored under "${key}"`)
  }

  /**
   * The manifest a peer holds for one of this node's refs, decrypted and checked: it must carry this
   * owner's MAC (anyone can encrypt to the owner's recipient; only the owner can MAC), be encrypted to
   * the owner first, and name a key whose refId is `refId`, at the version the peer reported. Its
   * version, write time and chunks can then be trusted.
   */
  async remoteManifest(refId: string, remote: RemoteRef, signal: AbortSignal): Promise<RemoteManifest> {
    const { keys, fetcher, cipher } = this.#o
    const { value: plain } = await fetcher.fetch(remote.manifestCipherId!, maxCipherBytes(MAX_MANIFEST_BYTES), refId, (bytes) => cipher.open(bytes), signal)
    const { manifest, authenticated } = decodeManifest(plain, keys.manifestKey)
    if (!authenticated) throw new UnauthenticatedError(`a peer's manifest for ref ${refId} carries no MAC of this owner`)
    if (manifest.recipients[0] !== keys.recipient) throw new UnauthenticatedError(`a peer's manifest for ref ${refId} is not encrypted to this owner first`)
    if (this.refIdOf(manifest.key) !== refId || manifest.version !== remote.version) throw new UnavailableError(`a peer's manifest for ref ${refId} does not match it`)
    return { manifest, manifestId: sha256Hex(plain), plain }
  }

  /** The version of `refId` a peer holds, when this owner's proof or manifest backs it. */
  async verifiedVersion(conn: Connection, refId: string, signal: AbortSignal): Promise<number | undefined> {
    try {
      const r = await getRef(conn, refId, this.#o.deadlines.request(signal, true))
      if (r === undefined) return undefined
      return r.deleted ? this.ownTombstone(r)?.version : (await this.remoteManifest(refId, r, signal)).manifest.version
    } catch (err) {
      if (signal.aborted) throw err
      return undefined
    }
  }

  /** A peer's tombstone when this owner made it (its proof verifies); a peer cannot forge a delete. */
  ownTombstone(r: RemoteRef): Tombstone | undefined {
    const tomb = { refId: r.refId, version: r.version, deletedAt: r.writtenAt, proof: r.proof }
    return r.deleted && isOwnTombstone(this.#o.keys, tomb) ? tomb : undefined
  }

  /** Remembers the newest delete a peer reports for a ref this node may not know: no stale copy is installed over it. */
  async noteRemoteTombstone({ refId, ...tomb }: Tombstone): Promise<void> {
    const { index, tables } = this.#o.local
    if ((tables.remoteTombstones.get(refId)?.version ?? -1) >= tomb.version) return
    await index.transaction((tx) => tx.put(tables.remoteTombstones, refId, tomb))
  }

  /** Records versions peers hold for refs, so the next store of such a key goes above them. */
  async raiseFloors(seen: Array<[refId: string, version: number]>): Promise<void> {
    const { index, tables } = this.#o.local
    const floors = tables.versionFloors
    const higher = seen.filter(([refId, version]) => version > (floors.get(refId) ?? 0))
    if (higher.length > 0) await index.transaction((tx) => {
      for (const [refId, version] of higher) if (version > (tx.get(floors, refId) ?? 0)) tx.put(floors, refId, version)
    })
  }

  /**
   * Replaces the manifest of `key`'s current version `record` by `manifest` (sealed anew: the same chunks, a new
   * version number or format), under the key's lock the caller holds.
   */
  async reseal(held: HeldKey, record: RefRecord, manifest: Manifest): Promise<void> {
    const { local, cipher, keys } = this.#o
    const meta = metaOf(record)
    const recipients = local.tables.recipientSets.get(meta.recipientsId) ?? manifest.recipients
    const bytes = encodeManifest(manifest, keys.manifestKey)
    const manifestId = sha256Hex(bytes)
    await local.ensure(manifestId, bytes)
    const { cipherId: manifestCipherId } = await cipher.encrypt(bytes, manifestId, { recipients, recipientsId: meta.recipientsId })
    await local.commit(held.key, {
      record: { ...record, manifestId, version: manifest.version, meta: { ...meta, manifestCipherId } },
      blobIds: (local.tables.refBlobs.get(held.key) ?? []).map((id) => (id === record.manifestId ? manifestId : id)),
      recipients: { id: meta.recipientsId, list: recipients },
    })
  }

  /**
   * Fetches, checks and installs a ref a peer holds for us; `undefined` when a newer local state or a
   * known later delete wins. `held`: the caller holds a key's lock, and expects the ref to be that key's.
   */
  async install(refId: string, remote: RemoteRef, signal: AbortSignal, held?: HeldKey, fetched?: RemoteManifest): Promise<{ key: string; record: RefRecord } | undefined> {
    const { local, keyLocks, log } = this.#o
    const { index, tables } = local
    const deleted = tables.remoteTombstones.get(refId)
    if (deleted !== undefined && deleted.version >= remote.version) return undefined
    const { manifest, manifestId, plain } = fetched ?? (await this.remoteManifest(refId, remote, signal))
    const key = manifest.key
    if (held !== undefined && held.key !== key) throw new UnavailableError(`a peer's manifest for ref ${refId} names another key`)
    return keyLocks.with(key, held, async () => {
      const current = index.refs.get(key)
      const tomb = index.tombstones.get(key)
      // The owner's own write time, from the manifest it encrypted, decides: a peer's word does not.
      if (current !== undefined && (current.version >= manifest.version || current.updatedAt > manifest.createdAt)) return undefined
      if (tomb !== undefined && (tomb.version >= manifest.version || tomb.deletedAt > manifest.createdAt)) return undefined
      await local.ensure(manifestId, plain)
      const recipientsId = recipientsIdOf(manifest.recipients)
      const meta: RefMeta = { refId, manifestCipherId: remote.manifestCipherId!, chunkCount: manifest.chunks.length, recipientsId, ...(Object.keys(manifest.metadata).length === 0 ? {} : { metadata: manifest.metadata }) }
      const record: RefRecord = { manifestId, size: manifest.size, sha256: manifest.sha256, version: manifest.version, updatedAt: manifest.createdAt, meta: { ...meta } }
      const committed = await local.commit(key, {
        record,
        blobIds: [...new Set([...manifest.chunks.map((c) => c.plainId), manifestId])],
        recipients: { id: recipientsId, list: manifest.recipients },
        chunks: { records: manifest.chunks.map((c) => [c.plainId, { cipherId: c.cipherId, recipientsId }]), replace: false },
        // Checked in the commit itself: a delete another peer reported meanwhile wins.
        guard: (tx) => (tx.get(tables.remoteTombstones, refId)?.version ?? -1) < manifest.version,
      })
      if (!committed) {
        await local.free([manifestId])
        return undefined
      }
      log.info({ key, version: manifest.version }, 'recovered ref from peer')
      return { key, record }
    })
  }
}
