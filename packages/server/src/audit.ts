// Proof of storage: a sample of the copies peers acknowledged, each challenged with a fresh nonce that
// the answer must be hashed with, together with one of the ref's blobs: a peer that no longer holds
// the bytes cannot answer. A copy that fails counts as lost (its acknowledgement is forgotten) and the
// ref is replicated to that peer again.
import { randomBytes, randomInt } from 'node:crypto'
import type { BlobCipher } from './cipher.js'
import { proveBlob } from './client.js'
import type { Deadlines } from './deadlines.js'
import { codeOf, messageOf } from './errors.js'
import { metaOf, type LocalStore } from './local.js'
import type { Logger } from './logger.js'
import { sha256Hex } from './manifest.js'
import type { Peering } from './placement.js'
import type { Replicator } from './replication.js'

/** A copy that failed its audit. */
export interface LostCopy {
  key: string
  nodeId: string
  /** Why it counts as lost. */
  reason: string
}

/** What {@link Auditor.audit} found. */
export interface AuditResult {
  /** Copies challenged and answered (rightly or not). */
  audited: number
  lost: LostCopy[]
}

export interface AuditorOptions {
  local: LocalStore
  cipher: BlobCipher
  membership: Peering
  replicator: Replicator
  deadlines: Deadlines
  log: Logger
}

/** Challenges peers for the copies they acknowledged. */
export class Auditor {
  readonly #o: AuditorOptions

  constructor(options: AuditorOptions) {
    this.#o = options
  }

  /** Challenges up to `sample` acknowledged copies held by connected peers, picked at random. */
  async audit(sample: number, signal: AbortSignal | undefined): Promise<AuditResult> {
    const result: AuditResult = { audited: 0, lost: [] }
    for (const [refId, nodeId] of this.#pick(sample)) {
      signal?.throwIfAborted()
      const lost = await this.#challenge(refId, nodeId, signal)
      if (lost === null) continue
      result.audited++
      if (lost !== undefined) result.lost.push(lost)
    }
    if (result.lost.length > 0) this.#o.log.warn({ audited: result.audited, lost: result.lost.length }, 'copies failed their audit and are replicated again')
    return result
  }

  /** Up to `sample` (refId, peer) acknowledgements of connected peers, uniformly at random (one pass, reservoir sampling). */
  #pick(sample: number): Array<[string, string]> {
    const { local, membership } = this.#o
    const chosen: Array<[string, string]> = []
    let seen = 0
    for (const [k, state] of local.index.peerState.entries()) {
      if (state.state !== 'held') continue
      const [refId, nodeId] = k.split('/') as [string, string]
      if (membership.connection(nodeId) === undefined) continue
      seen++
      if (chosen.length < sample) chosen.push([refId, nodeId])
      else {
        const at = randomInt(seen)
        if (at < sample) chosen[at] = [refId, nodeId]
      }
    }
    return chosen
  }

  /** One challenge: `undefined` when the copy proved itself, the lost copy when not, `null` when it could not be judged. */
  async #challenge(refId: string, nodeId: string, signal: AbortSignal | undefined): Promise<LostCopy | undefined | null> {
    const { local, cipher, membership, replicator, deadlines, log } = this.#o
    const key = local.tables.refIds.get(refId)
    const record = key === undefined ? undefined : local.index.refs.get(key)
    const held = local.index.peerState.get(`${refId}/${nodeId}`)
    const conn = membership.connection(nodeId)
    if (key === undefined || record === undefined || conn === undefined || held?.meta?.version !== record.version) return null
    const meta = metaOf(record)
    // One of the ref's blobs at random: a chunk, or the manifest.
    const blobIds = local.tables.refBlobs.get(key) ?? []
    const plainId = blobIds[randomInt(Math.max(1, blobIds.length))] ?? record.manifestId
    const chunk = plainId === record.manifestId ? undefined : local.tables.chunks.get(plainId)
    const cipherId = chunk?.cipherId ?? meta.manifestCipherId
    const nonce = randomBytes(32).toString('hex')
    let expected: string
    try {
      const bytes = await cipher.cipherOf(plainId, cipherId, chunk?.recipientsId ?? meta.recipientsId)
      expected = sha256Hex([Buffer.from(nonce, 'hex'), ...bytes])
    } catch (err) {
      // This node cannot make the blob either (lost here too): a scrub heals it first.
      log.debug({ key, err: messageOf(err) }, 'audit: the blob cannot be made here; skipped')
      return null
    }
    let reason: string | undefined
    try {
      const proof = await proveBlob(conn, cipherId, nonce, deadlines.request(signal))
      if (proof !== expected) reason = 'its proof of the blob is wrong'
    } catch (err) {
      const code = (err as { remoteCode?: string }).remoteCode ?? codeOf(err)
      if (code !== 'ERR_NOT_FOUND' && code !== 'ERR_INTEGRITY') return null
      reason = `it no longer holds the blob (${code})`
    }
    if (reason === undefined) return undefined
    await local.index.transaction((tx) => tx.delete(local.index.peerState, `${refId}/${nodeId}`))
    replicator.later(conn, key, 'replicating a copy that failed its audit', { verify: true })
    return { key, nodeId, reason }
  }
}
