// Placement: which peers hold (or should hold) a ref, and in which order to ask them. The rest of
// the server asks this module, and only this module; a policy decides, a pure function of the ref
// and the membership, so that every node computes the same answer.
import type { Connection } from '@dcas/p2p'
import { messageOf } from './errors.js'
import { RendezvousTable } from './rendezvous.js'

/** A node of the cluster as placement sees it. */
export interface Member {
  nodeId: string
  /** Whether this node has a connection to it now. */
  connected: boolean
  /** Its failure-domain label, from its signed peer record. */
  zone?: string
  /** Bytes it offers to hold for others, from its signed peer record. */
  capacity?: number
  /** `active` (the default), `leaving` (being drained: holds nothing new) or `lost` (unseen longer than `lostAfter`). */
  state?: 'active' | 'leaving' | 'lost'
}

/**
 * Decides which nodes hold a copy of a ref. It must be a pure function of its arguments, so that every
 * node places a ref the same way.
 */
export interface PlacementPolicy {
  /**
   * The node ids, from `members` (the active members: this node, lost and leaving nodes never among them),
   * that should hold `refId`, the first the one to ask first.
   */
  holders(refId: string, members: readonly Member[]): string[]
}

/** Every known peer holds every ref: a full mesh (`replicas: 'all'`). */
export const everyPeer: PlacementPolicy = {
  holders: (_refId, members) => members.map((m) => m.nodeId),
}

/**
 * `replicas` copies of each ref, on the nodes chosen by weighted rendezvous hashing of the ref id over the
 * members: weights from their declared capacities (capped, see {@link MAX_WEIGHT_RATIO}), copies in distinct
 * zones while there are zones enough. A member joining or leaving moves only the refs it wins or held.
 */
export function rendezvous(options: { replicas: number }): PlacementPolicy {
  const { replicas } = options
  if (!Number.isSafeInteger(replicas) || replicas < 0) throw new RangeError(`replicas must be a non-negative integer, got ${String(replicas)}`)
  // Membership arrays are kept until membership changes: one compiled table per array.
  const tables = new WeakMap<readonly Member[], RendezvousTable>()
  return {
    holders(refId, members) {
      let table = tables.get(members)
      if (table === undefined) tables.set(members, (table = new RendezvousTable(members)))
      return table.holders(refId, replicas)
    },
  }
}

/** The members and connections placement works with. */
export interface Peering {
  /** Every known peer (lost and leaving ones too); the same array until something changes. */
  members(): Member[]
  /** The open connection to a peer, if any. */
  connection(nodeId: string): Connection | undefined
  /** Every open connection. */
  connections(): Connection[]
  /** A connection to a peer: the open one, else dialled at its known addresses (rejects when it cannot be reached). */
  connect(nodeId: string, signal?: AbortSignal): Promise<Connection>
}

/** Placed peers, reached or not. */
export interface Reached {
  /** Connections to the placed peers that could be reached, in placement order. */
  conns: Connection[]
  /** The placed peers that could not, with why. */
  unreachable: Array<{ nodeId: string; error: string }>
  /** Every placed peer. */
  placed: string[]
}

/** Answers placement questions for the other modules, from a policy, the membership and the record of who acknowledged what. */
export class Placement {
  readonly #policy: PlacementPolicy
  readonly #peering: Peering
  readonly #holds: (refId: string, nodeId: string) => boolean
  #candidates: { of: Member[]; active: Member[] } | undefined

  /** `holds` tells whether a peer acknowledged a copy of a ref. */
  constructor(policy: PlacementPolicy, peering: Peering, holds: (refId: string, nodeId: string) => boolean) {
    this.#policy = policy
    this.#peering = peering
    this.#holds = holds
  }

  /** The members a ref may be placed on: neither lost nor leaving. The same array until membership changes. */
  candidates(): Member[] {
    const members = this.#peering.members()
    if (this.#candidates?.of !== members) this.#candidates = { of: members, active: members.filter((m) => m.state === undefined || m.state === 'active') }
    return this.#candidates.active
  }

  /** The node ids that should hold `refId`, connected or not, in order. */
  placed(refId: string): string[] {
    return this.#policy.holders(refId, this.candidates())
  }

  /** Whether `nodeId` should hold `refId`. */
  places(refId: string, nodeId: string): boolean {
    return this.placed(refId).includes(nodeId)
  }

  /** The connected peers that should hold `refId`: where catch-up brings it. */
  targets(refId: string): Connection[] {
    return this.#open(this.placed(refId))
  }

  /** The placed peers of `refId`, each dialled unless connected: where a store sends it. */
  async reach(refId: string, signal?: AbortSignal): Promise<Reached> {
    const placed = this.placed(refId)
    const tried = await Promise.all(
      placed.map((nodeId) =>
        this.#peering.connect(nodeId, signal).then(
          (conn) => ({ nodeId, conn, error: undefined }),
          (err: unknown) => ({ nodeId, conn: undefined, error: messageOf(err) }),
        ),
      ),
    )
    return {
      placed,
      conns: tried.flatMap((t) => (t.conn === undefined ? [] : [t.conn])),
      unreachable: tried.flatMap((t) => (t.error === undefined ? [] : [{ nodeId: t.nodeId, error: t.error }])),
    }
  }

  /**
   * The peers to ask for `refId`'s blobs, in order: those that acknowledged a copy and those it is placed on
   * (dialled when not connected), then every other connected peer (a copy may have stayed there). `spread`
   * rotates the peers that acknowledged a copy, so that successive blobs are asked of different ones first.
   */
  async readOrder(refId: string, options: { spread?: number; signal?: AbortSignal } = {}): Promise<Connection[]> {
    const { spread = 0, signal } = options
    const placed = this.placed(refId)
    const members = this.#peering.members()
    const held = members.filter((m) => this.#holds(refId, m.nodeId) && m.state !== 'lost').map((m) => m.nodeId)
    const first = [...new Set([...held, ...placed])]
    const reached = await Promise.all(first.map((id) => this.#peering.connect(id, signal).catch(() => undefined)))
    const order = new Map(placed.map((id, i) => [id, i]))
    const ranked = first
      .map((id, i) => ({ conn: reached[i], rank: this.#holds(refId, id) ? 0 : 1, at: order.get(id) ?? Infinity }))
      .filter((x): x is { conn: Connection; rank: number; at: number } => x.conn !== undefined)
      .sort((x, y) => x.rank - y.rank || x.at - y.at)
    const seen = new Set(ranked.map((x) => x.conn))
    const sorted = [...ranked.map((x) => x.conn), ...this.#peering.connections().filter((c) => !seen.has(c))]
    const holders = ranked.filter((x) => x.rank === 0).length
    if (holders < 2 || spread % holders === 0) return sorted
    const at = spread % holders
    return [...sorted.slice(at, holders), ...sorted.slice(0, at), ...sorted.slice(holders)]
  }

  /** The peers a delete of `refId` must reach, connected or not: those it is placed on and those that acknowledged a copy. */
  deleteTargets(refId: string): string[] {
    const ids = new Set(this.placed(refId))
    for (const m of this.#peering.members()) if (this.#holds(refId, m.nodeId)) ids.add(m.nodeId)
    return [...ids]
  }

  /** The open connections to some of `nodeIds`, in their order. */
  #open(nodeIds: string[]): Connection[] {
    const out: Connection[] = []
    for (const id of nodeIds) {
      const conn = this.#peering.connection(id)
      if (conn?.open === true) out.push(conn)
    }
    return out
  }
}
