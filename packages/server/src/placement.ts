// Placement: which peers hold (or should hold) a ref, and in which order to ask them. The rest of
// the server asks this module, and only this module; a policy decides, a pure function of the ref
// and the membership, so that every node computes the same answer.
import type { Connection } from '@dcas/p2p'

/** A node of the cluster as placement sees it. */
export interface Member {
  nodeId: string
  /** Whether this node has a connection to it now. */
  connected: boolean
}

/**
 * Decides which nodes hold a copy of a ref. It must be a pure function of its arguments, so that every
 * node places a ref the same way.
 */
export interface PlacementPolicy {
  /** The node ids, from `members` (this node never among them), that should hold `refId`, the first the one to ask first. */
  holders(refId: string, members: readonly Member[]): string[]
}

/** Every known peer holds every ref: the default, a full mesh. */
export const everyPeer: PlacementPolicy = {
  holders: (_refId, members) => members.map((m) => m.nodeId),
}

/** What placement needs to know of the cluster. */
export interface Membership {
  /** Every known peer. */
  members(): Member[]
  /** The open connection to a peer, if any. */
  connection(nodeId: string): Connection | undefined
  /** Every open connection. */
  connections(): Connection[]
}

/** Answers placement questions for the other modules, from a policy, the membership and the record of who acknowledged what. */
export class Placement {
  readonly #policy: PlacementPolicy
  readonly #membership: Membership
  readonly #holds: (refId: string, nodeId: string) => boolean

  /** `holds` tells whether a peer acknowledged a copy of a ref. */
  constructor(policy: PlacementPolicy, membership: Membership, holds: (refId: string, nodeId: string) => boolean) {
    this.#policy = policy
    this.#membership = membership
    this.#holds = holds
  }

  /** The node ids that should hold `refId`, connected or not. */
  placed(refId: string): string[] {
    return this.#policy.holders(refId, this.#membership.members())
  }

  /** Whether `nodeId` should hold `refId`. */
  places(refId: string, nodeId: string): boolean {
    return this.placed(refId).includes(nodeId)
  }

  /** The connected peers that should hold `refId`: where a store sends it and catch-up brings it. */
  targets(refId: string): Connection[] {
    return this.#open(this.placed(refId))
  }

  /**
   * The connected peers to ask for `refId`'s blobs, in order: peers that acknowledged a copy, then the
   * others it is placed on, then every other connected peer (a copy may have stayed there). `spread` rotates
   * the peers that acknowledged a copy, so that successive blobs are asked of different ones first.
   */
  readOrder(refId: string, spread = 0): Connection[] {
    const placed = this.placed(refId)
    const rank = (c: Connection): number => (this.#holds(refId, c.remoteNodeId) ? 0 : placed.includes(c.remoteNodeId) ? 1 : 2)
    const order = new Map(placed.map((id, i) => [id, i]))
    const sorted = this.#membership
      .connections()
      .map((c) => ({ c, rank: rank(c), at: order.get(c.remoteNodeId) ?? Infinity }))
      .sort((x, y) => x.rank - y.rank || x.at - y.at)
      .map((x) => x.c)
    const holders = sorted.filter((c) => this.#holds(refId, c.remoteNodeId)).length
    if (holders < 2 || spread % holders === 0) return sorted
    const at = spread % holders
    return [...sorted.slice(at, holders), ...sorted.slice(0, at), ...sorted.slice(holders)]
  }

  /** The peers a delete of `refId` must reach, connected or not: those it is placed on and those that acknowledged a copy. */
  deleteTargets(refId: string): string[] {
    const ids = new Set(this.placed(refId))
    for (const m of this.#membership.members()) if (this.#holds(refId, m.nodeId)) ids.add(m.nodeId)
    return [...ids]
  }

  /** The open connections to some of `nodeIds`, in their order. */
  #open(nodeIds: string[]): Connection[] {
    const out: Connection[] = []
    for (const id of nodeIds) {
      const conn = this.#membership.connection(id)
      if (conn?.open === true) out.push(conn)
    }
    return out
  }
}
