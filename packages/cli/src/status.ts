// What `GET /v1/status` and `dcas status` report: peers, replica health, disk and memory use.
// Types only, so that the web console's bundle shares them with the daemon (health.ts computes them).
import type { ScrubResult } from '@dcas/server'

/** A peer as the status shows it: a known node, or a configured address never reached. */
export interface PeerStatus {
  /** Its node id, once it has connected. */
  nodeId?: string
  /** The address this node dials it at, when it dials it. */
  address?: string
  connected: boolean
  /** Why the last dial failed (while not connected). */
  error?: { code?: string; message: string; at: number }
  /** Connected, but background work toward it failed in a way that may pass; retried with backoff until it catches up. */
  behind?: { message: string; retryIn: number; at: number }
  /** `active`, `leaving` (being drained) or `lost` (unseen longer than lostAfter). */
  state?: 'active' | 'leaving' | 'lost'
  /** Its zone and the bytes it offers to hold for others, as its peer record says. */
  zone?: string
  capacity?: number
  /** When it was last seen alive (ms since the epoch). */
  lastSeen?: number
}

/** How well this node's objects are replicated. */
export interface ReplicaHealth {
  /** Objects stored on this node. */
  objects: number
  /** Their total size in bytes. */
  bytes: number
  /** Objects with all the peer copies placement asks for (the current version). */
  replicated: number
  /** Objects with fewer: the replication lag. */
  lagging: number
  /** Bytes of the lagging objects. */
  lagBytes: number
  /** Objects no peer holds: a lost disk loses them. */
  unreplicated: number
}

/** An object that some known peer does not hold (its current version), and which peers. */
export interface LaggingObject {
  key: string
  size: number
  version: number
  updatedAt: number
  /** Peers that hold this version. */
  replicas: string[]
  /** Known peers that do not: `NodeStatus.peers` says why (not connected, or behind). */
  missing: string[]
}

/** A page of `GET /v1/lagging`. */
export interface LaggingPage {
  objects: LaggingObject[]
  /** Pass as `after` for the next page; absent on the last page. */
  next?: string
}

/**
 * Placement over the cluster (R copies of each object) and its repair, once the node reports it;
 * absent from nodes that replicate every object to every peer ({@link ReplicaHealth} says how well).
 */
export interface ReplicationStatus {
  /** Copies each object should have. */
  target: number
  /** Objects by their number of live copies (`"0"`, `"1"`, …). */
  objectsByCopies: Record<string, number>
  /** What repair or rebalancing has left to do. */
  repair: { objectsLeft: number; bytesLeft: number; etaSeconds?: number; settled: boolean }
}

/** Bytes on disk under the data directory. */
export interface DiskUsage {
  /** This node's own chunks and manifests (`blobs/`). */
  blobs: number
  /** Replicas held for other nodes (`replicas/`). */
  replicas: number
  /** The metadata index (`index/`). */
  index: number
  /** Free space for this user on the data directory's file system. */
  free: number
}

/** The whole status of a running node. */
export interface NodeStatus {
  nodeId: string
  /** Where it listens for peers. */
  address: string
  /** The HTTP API's URL. */
  api: string
  root: string
  pid: number
  /** `@dcas/cli` version. */
  version: string
  /** Seconds since `dcas serve` started. */
  uptime: number
  peers: PeerStatus[]
  objects: ReplicaHealth
  /** Placement: the copies each object should have, how many have how many, and the repair or rebalancing left. */
  replication: ReplicationStatus
  disk: DiskUsage
  memory: { rss: number; maxRss: number; heapUsed: number }
  /** Chunks healed from peers since the start. */
  healed: number
  /** The last scrub since the start, if any. */
  lastScrub?: ScrubResult & { at: number }
}
