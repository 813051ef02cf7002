// Membership: the nodes of the cluster as this node knows them. Each node's signed record (addresses,
// zone, capacity, leaving or not), kept and persisted; when each was last seen alive (connected, or a
// fresh record of it arrived); which are lost (unseen longer than `lostAfter`) and which came back.
// Placement asks it for the members; the exchange of records is gossip.ts's job.
import type { Index, IndexTable } from '@dcas/store'
import { messageOf } from './errors.js'
import type { Logger } from './logger.js'
import { signRecord, verifyRecord, type PeerRecord, type PeerRecordFields, type RecordSigner } from './peer-record.js'
import type { Member } from './placement.js'

/** Most nodes this node keeps records of: bounds what peers can make it hold. */
export const MAX_MEMBERS = 4096
/** A new node that sends no peer records (an older node) is taken as a member after this long all the same. */
const INTRODUCTION_MS = 10_000

/** The persisted state of one member. */
interface MemberEntry {
  record?: PeerRecord
  /** When this node declared it lost (local clock). */
  lostSince?: number
}

/** What {@link Membership} tells the server. */
export interface MembershipEvents {
  /** A node this node did not know joined. */
  joined(nodeId: string): void
  /** A node was unseen longer than `lostAfter`. */
  lost(nodeId: string, lastSeen: number): void
  /** A lost node was seen again. */
  returned(nodeId: string): void
  /** Something placement depends on changed (a member, its zone, capacity or state). */
  changed(): void
  /** This node's own record was signed anew (to be sent to peers). */
  signed(record: PeerRecord): void
  /** A node connected for the first time is a member now (see {@link Membership.connected}). */
  introduced(nodeId: string): void
}

export interface MembershipOptions {
  index: Index
  /** The peers table: node ids this node dialled or was dialled by (members without a record). */
  peersTable: IndexTable<{ address?: string; lastSeen: number }>
  /** This node's id. */
  self: string
  /** Signs this node's record; none when the transport's node id is not this identity's (no record is published). */
  signer: RecordSigner | undefined
  /** Addresses to publish. */
  announce: () => string[]
  zone: string | undefined
  capacity: number | undefined
  lostAfter: number
  /** Whether a connection to a node is open now. */
  connected: (nodeId: string) => boolean
  log: Logger
  events: MembershipEvents
}

/** The state of a member, as placement and status see it. */
export type MemberState = 'active' | 'leaving' | 'lost'

/** The nodes of the cluster, this node excepted. */
export class Membership {
  readonly #o: MembershipOptions
  readonly #table: IndexTable<MemberEntry>
  readonly #entries = new Map<string, MemberEntry>()
  /** Local time each node was last seen alive. */
  readonly #lastSeen = new Map<string, number>()
  readonly #startedAt = Date.now()
  /** Nodes without a record seen connected (their ids are in the peers table too, once remembered). */
  readonly #known = new Set<string>()
  /**
   * New nodes connected but not yet introduced: a node's first `members.push` (its own record, when it has one,
   * comes in it) makes it a member, so that placement never sees it without its zone and capacity.
   */
  readonly #pending = new Map<string, NodeJS.Timeout>()
  #self: PeerRecord | undefined
  #leaving = false
  #members: Member[] | undefined
  #timer: NodeJS.Timeout | undefined
  #heartbeat: NodeJS.Timeout | undefined

  constructor(options: MembershipOptions) {
    this.#o = options
    this.#table = options.index.table('members')
  }

  /** Loads the persisted records. */
  open(): void {
    for (const [nodeId] of this.#o.peersTable.entries()) this.#known.add(nodeId)
    for (const [nodeId, entry] of this.#table.entries()) {
      if (nodeId === this.#o.self) {
        if (entry.record?.state === 'leaving') this.#leaving = true
        continue
      }
      this.#entries.set(nodeId, entry)
    }
  }

  /** Signs this node's record (its addresses are known now) and starts the lost-node checks and heartbeats. */
  start(): void {
    this.#sign()
    const { lostAfter } = this.#o
    this.#timer = setInterval(() => this.check(), Math.min(Math.max(lostAfter / 4, 50), 30_000))
    this.#timer.unref()
    this.#heartbeat = setInterval(() => this.#sign(), Math.min(Math.max(lostAfter / 3, 100), 5 * 60_000))
    this.#heartbeat.unref()
  }

  close(): void {
    clearInterval(this.#timer)
    clearInterval(this.#heartbeat)
    for (const timer of this.#pending.values()) clearTimeout(timer)
  }

  /** This node's current record (none when it cannot sign one). */
  get self(): PeerRecord | undefined {
    return this.#self
  }

  /** Whether this node is leaving (being drained). */
  get leaving(): boolean {
    return this.#leaving
  }

  /** The record of a node, if any. */
  record(nodeId: string): PeerRecord | undefined {
    return this.#entries.get(nodeId)?.record
  }

  /** Every record this node knows, its own included: what it tells its peers. */
  records(): PeerRecord[] {
    const out: PeerRecord[] = []
    if (this.#self !== undefined) out.push(this.#self)
    for (const e of this.#entries.values()) if (e.record !== undefined) out.push(e.record)
    return out
  }

  /** Where a node may be dialled: its record's addresses, then the one this node dialled it at. */
  addresses(nodeId: string): string[] {
    const out = [...(this.record(nodeId)?.addresses ?? [])]
    const dialled = this.#o.peersTable.get(nodeId)?.address
    if (dialled !== undefined && !out.includes(dialled)) out.push(dialled)
    return out
  }

  /** A member's state. */
  stateOf(nodeId: string): MemberState {
    const entry = this.#entries.get(nodeId)
    if (entry?.lostSince !== undefined && !this.#o.connected(nodeId)) return 'lost'
    return entry?.record?.state === 'leaving' ? 'leaving' : 'active'
  }

  /** When a node was last seen alive (local clock): now while it is connected. */
  lastSeen(nodeId: string): number {
    if (this.#o.connected(nodeId)) return Date.now()
    return this.#lastSeen.get(nodeId) ?? this.#startedAt
  }

  /** Every known node but this one, with its zone, capacity and state. The same array until something changes. */
  members(): Member[] {
    if (this.#members !== undefined) return this.#members
    const ids = new Set<string>(this.#entries.keys())
    for (const [nodeId] of this.#o.peersTable.entries()) ids.add(nodeId)
    for (const nodeId of this.#known) ids.add(nodeId)
    ids.delete(this.#o.self)
    for (const nodeId of this.#pending.keys()) ids.delete(nodeId)
    const out: Member[] = []
    for (const nodeId of ids) {
      const record = this.record(nodeId)
      out.push({
        nodeId,
        connected: this.#o.connected(nodeId),
        state: this.stateOf(nodeId),
        ...(record?.zone === undefined ? {} : { zone: record.zone }),
        ...(record?.capacity === undefined ? {} : { capacity: record.capacity }),
      })
    }
    out.sort((a, b) => (a.nodeId < b.nodeId ? -1 : 1))
    this.#members = out
    return out
  }

  /**
   * A node was connected: it is alive (and back, if it was lost). A node this node does not know is introduced by
   * its first push of peer records (its own among them, when it has one), or after {@link INTRODUCTION_MS}; resolves
   * to whether it is a member already.
   */
  async connected(nodeId: string): Promise<boolean> {
    this.#lastSeen.set(nodeId, Date.now())
    if (!this.#entries.has(nodeId) && !this.#known.has(nodeId)) {
      if (!this.#pending.has(nodeId)) this.#pending.set(nodeId, setTimeout(() => this.#introduce(nodeId), INTRODUCTION_MS).unref())
      return false
    }
    this.#invalidate(false)
    await this.#returned(nodeId)
    return true
  }

  /** Whether a connected node is a member (not a stranger still to introduce itself). */
  introduced(nodeId: string): boolean {
    return !this.#pending.has(nodeId)
  }

  /** A node's connection closed: it was alive until now. Resolves to whether it had been introduced. */
  disconnected(nodeId: string): boolean {
    this.#lastSeen.set(nodeId, Date.now())
    const pending = this.#pending.get(nodeId)
    clearTimeout(pending)
    this.#pending.delete(nodeId)
    this.#invalidate(false)
    return pending === undefined
  }

  /** A stranger becomes a member: placement counts it, and the server starts its work with it. */
  #introduce(nodeId: string): void {
    const timer = this.#pending.get(nodeId)
    if (timer === undefined) return
    clearTimeout(timer)
    this.#pending.delete(nodeId)
    this.#known.add(nodeId)
    this.#invalidate()
    this.#o.events.joined(nodeId)
    this.#o.events.introduced(nodeId)
  }

  /**
   * Takes records a peer sent (`from`), each checked and verified; keeps those newer than what this node
   * knows and resolves to them (to pass on). A record of this node itself is ignored.
   */
  async merge(values: readonly unknown[], from?: string): Promise<PeerRecord[]> {
    const now = Date.now()
    const accepted: PeerRecord[] = []
    const persist: PeerRecord[] = []
    const joined: string[] = []
    let changed = false
    for (const value of values) {
      const claimed = value as Partial<PeerRecord> | null
      const nodeId = typeof claimed?.nodeId === 'string' ? claimed.nodeId : undefined
      if (nodeId === undefined || nodeId === this.#o.self) continue
      const known = this.#entries.get(nodeId)?.record
      // Cheap first: a record no newer than the one kept is not even verified.
      if (known !== undefined && typeof claimed?.issuedAt === 'number' && claimed.issuedAt <= known.issuedAt) continue
      if (known === undefined && !this.#entries.has(nodeId) && !this.#room()) {
        this.#o.log.warn({ from }, `membership is full (${MAX_MEMBERS} nodes): a new record is refused`)
        continue
      }
      let record: PeerRecord
      try {
        record = verifyRecord(value, now)
      } catch (err) {
        this.#o.log.warn({ from, nodeId, err: messageOf(err) }, 'a peer record was refused')
        continue
      }
      const entry: MemberEntry = { ...(this.#entries.get(nodeId) ?? {}), record }
      const isNew = !this.#entries.has(nodeId) && !this.#o.peersTable.has(nodeId) && !this.#known.has(nodeId) && !this.#pending.has(nodeId)
      this.#entries.set(nodeId, entry)
      this.#lastSeen.set(nodeId, now)
      accepted.push(record)
      // Heartbeats only renew the signature: they are kept in memory; what placement or dialling needs is persisted.
      if (known === undefined || differs(known, record)) {
        persist.push(record)
        changed = true
      }
      if (isNew) joined.push(nodeId)
    }
    if (persist.length > 0) {
      await this.#o.index.transaction((tx) => {
        for (const r of persist) tx.put(this.#table, r.nodeId, this.#entries.get(r.nodeId)!)
      })
    }
    // Placement learns of the change before anyone hears of the new nodes.
    if (changed) this.#invalidate()
    for (const nodeId of joined) this.#o.events.joined(nodeId)
    for (const r of accepted) await this.#returned(r.nodeId)
    // The first push of a new peer introduces it, its own record (if it sent one) now kept.
    if (from !== undefined) this.#introduce(from)
    return accepted
  }

  /** Marks this node as leaving (drain) and signs its record anew. */
  async leave(): Promise<PeerRecord | undefined> {
    this.#leaving = true
    const record = this.#sign()
    if (record !== undefined) await this.#o.index.transaction((tx) => tx.put(this.#table, this.#o.self, { record }))
    return record
  }

  /** Declares lost the nodes unseen longer than `lostAfter` (run on a timer; tests may call it). */
  check(): void {
    const now = Date.now()
    const lost: Array<[string, number]> = []
    for (const m of this.members()) {
      if (m.connected || m.state === 'lost') continue
      const seen = this.lastSeen(m.nodeId)
      if (now - seen > this.#o.lostAfter) lost.push([m.nodeId, seen])
    }
    if (lost.length === 0) return
    for (const [nodeId] of lost) this.#entries.set(nodeId, { ...(this.#entries.get(nodeId) ?? {}), lostSince: now })
    this.#invalidate()
    void this.#o.index
      .transaction((tx) => {
        for (const [nodeId] of lost) tx.put(this.#table, nodeId, this.#entries.get(nodeId)!)
      })
      .catch((err: unknown) => this.#o.log.warn({ err: messageOf(err) }, 'recording lost nodes failed'))
    for (const [nodeId, seen] of lost) {
      this.#o.log.warn({ peer: nodeId, lastSeen: new Date(seen).toISOString() }, 'node lost: unseen longer than lostAfter')
      this.#o.events.lost(nodeId, seen)
    }
  }

  /** Room for one more member: a lost one is forgotten first when full. */
  #room(): boolean {
    if (this.#entries.size < MAX_MEMBERS) return true
    let oldest: [string, number] | undefined
    for (const [nodeId, e] of this.#entries) if (e.lostSince !== undefined && (oldest === undefined || e.lostSince < oldest[1])) oldest = [nodeId, e.lostSince]
    if (oldest === undefined) return false
    this.#entries.delete(oldest[0])
    void this.#o.index.transaction((tx) => tx.delete(this.#table, oldest[0])).catch(() => {})
    return true
  }

  async #returned(nodeId: string): Promise<void> {
    const entry = this.#entries.get(nodeId)
    if (entry?.lostSince === undefined) return
    const { lostSince: _, ...rest } = entry
    this.#entries.set(nodeId, rest)
    this.#invalidate()
    await this.#o.index.transaction((tx) => tx.put(this.#table, nodeId, rest))
    this.#o.log.info({ peer: nodeId }, 'lost node returned')
    this.#o.events.returned(nodeId)
  }

  /** Signs this node's record anew (heartbeat, or a change of state). */
  #sign(): PeerRecord | undefined {
    const { signer } = this.#o
    if (signer === undefined) return undefined
    const fields: PeerRecordFields = {
      addresses: this.#o.announce(),
      ...(this.#o.zone === undefined ? {} : { zone: this.#o.zone }),
      ...(this.#o.capacity === undefined ? {} : { capacity: this.#o.capacity }),
      state: this.#leaving ? 'leaving' : 'active',
      startedAt: this.#startedAt,
      issuedAt: Math.max(Date.now(), (this.#self?.issuedAt ?? 0) + 1),
    }
    this.#self = signRecord(signer, fields)
    this.#o.events.signed(this.#self)
    return this.#self
  }

  /** Forgets the members array; `placement`: something placement depends on changed. */
  #invalidate(placement = true): void {
    this.#members = undefined
    if (placement) this.#o.events.changed()
  }
}

/** Whether two records of a node differ in more than their signing time. */
function differs(a: PeerRecord, b: PeerRecord): boolean {
  return a.zone !== b.zone || a.capacity !== b.capacity || a.state !== b.state || a.startedAt !== b.startedAt || a.addresses.join(' ') !== b.addresses.join(' ')
}
