// The public types of @dcas/server: its options, results, events and the Server interface.
import type { EventEmitter } from 'node:events'
import type { Readable } from 'node:stream'
import type { Transport } from '@dcas/p2p'
import type { Chunker } from './chunker.js'
import type { Logger } from './logger.js'
import type { ObjectMetadata } from './manifest.js'
import type { PlacementPolicy } from './placement.js'
import type { HolderLimits } from './replica-space.js'
import type { StoreData } from './source.js'

/** Options of {@link createServer}. */
export interface ServerOptions {
  /** The data directory: `identity/`, `blobs/`, `replicas/`, `index/`. */
  root: string
  /** Where to listen, `host:port` (port 0 picks one). Default `127.0.0.1:0`. */
  listen?: string
  /** Addresses to dial and keep dialling (the original design's `OutboundServer`). */
  bootstrap?: string[]
  /** The secret every node of the cluster shares; saved in `identity/`. Default: the saved one, else a new one. */
  clusterSecret?: string | Uint8Array
  /** Node ids admitted without the cluster secret. */
  allowList?: string[]
  /**
   * Any {@link Transport}; default: TCP + TLS 1.3 with the identity in `root/identity`. A node signs its peer
   * record with the key in `root/identity`: with a transport whose node id is not that key's, it publishes none
   * (other nodes then know it only while connected to it).
   */
  transport?: Transport
  /**
   * Peer copies of each object besides the owner's own (default 2), placed by weighted rendezvous hashing over
   * the known nodes; `'all'`: every known peer holds everything (a full mesh).
   */
  replicas?: number | 'all'
  /** This node's failure-domain label (1 to 64 of `A-Z a-z 0-9 . _ : -`): copies of an object go to distinct zones while there are enough. */
  zone?: string
  /**
   * Bytes this node offers to hold for others: its weight in placement, counted up to 4 times the median
   * of the capacities the members declare. 0 holds nothing for others. Default: the median.
   */
  capacity?: number
  /**
   * Addresses other nodes may dial this node at, published in its signed peer record. Default: the listen
   * address (with an unspecified host, `0.0.0.0` or `::`, replaced by each of the machine's non-internal
   * addresses). `[]`: none; this node is then dialled only by nodes given its address in `bootstrap`.
   */
  announce?: string[]
  /**
   * Acknowledgements of placed holders a store needs (default 1): a number up to `replicas`, or `'all'` of the
   * placed holders. `0` stores locally only. A store with fewer placed holders reachable fails with
   * `ERR_QUORUM` before it stores anything.
   */
  writeQuorum?: 'all' | number
  /**
   * A node unseen this long (ms: no connection, no fresh peer record of it) is declared lost: each owner copies
   * what it held to the next node in placement order. Default 30 minutes.
   */
  lostAfter?: number
  /** Bytes per second background replication (repair, rebalance, catch-up) may send, all peers together (default 64 MiB/s; `Infinity`: no limit). */
  repairRate?: number
  /** Objects repaired or moved at once (default 2). */
  repairConcurrency?: number
  /**
   * While the cluster has at most this many other members (default 64), every pair stays connected; above, a
   * node dials the holders an object needs when it needs them, and closes connections left unused.
   */
  maxConnections?: number
  /** Extra `age1…` recipients that can also decrypt every replica. */
  recoveryRecipients?: string[]
  /** Chunk size in bytes for the default fixed-size chunker (1 MiB). */
  chunkSize?: number
  /** Replaces the fixed-size chunker. */
  chunker?: Chunker
  /** Timeout in ms for one request to a peer (a chunk, a ref, a page of refs; default 30 s). */
  requestTimeout?: number
  /** Chunks in flight per operation and per peer (default 4). */
  concurrency?: number
  /**
   * Which peers hold each object (default: every known peer). Every node of a cluster must use the same
   * policy; see {@link PlacementPolicy}.
   */
  placement?: PlacementPolicy
  /** What other owners may hold on this node: bytes and refs per owner, how many owners, free space kept (see {@link HolderLimits}). */
  holderLimits?: HolderLimits
  logger?: Logger
}

/** A peer this node knows. */
export interface PeerInfo {
  nodeId: string
  /** The address it is dialled at, when this node dials it (else the first one its peer record gives). */
  address?: string
  connected: boolean
  /** `active`, `leaving` (being drained) or `lost` (unseen longer than `lostAfter`). */
  state?: 'active' | 'leaving' | 'lost'
  /** Its failure-domain label, from its signed peer record. */
  zone?: string
  /** Bytes it offers to hold for others, from its signed peer record. */
  capacity?: number
  /** When it was last seen alive (ms since the epoch, this node's clock). */
  lastSeen?: number
}

/** How placement stands: copies per object, and the repair and rebalancing left to do. */
export interface PlacementStatus {
  /** The peer copies each object should have (`replicas`; with `'all'`, the active peers). */
  target: number
  /** How many of this node's objects have 0, 1, … live peer copies (more than `target` while a copy moves). */
  objectsByCopies: Record<number, number>
  repair: {
    /** Objects with a copy to make or to release. */
    objectsLeft: number
    /** Bytes left to copy. */
    bytesLeft: number
    /** Seconds left at the rate of the last minute's copies, when there is a rate to judge by. */
    etaSeconds?: number
    /** No object below its placed copies or with a copy where it is not placed (but on lost nodes), nothing queued. */
    settled: boolean
  }
}

/** Placement settled after work. */
export interface RepairDoneEvent {
  /** Copies made since placement was last settled. */
  copied: number
  /** Surplus copies released. */
  released: number
  /** Bytes copied. */
  bytes: number
}

/** What {@link Server.drain} resolves to. */
export interface DrainResult {
  /** Refs this node held for other owners when the drain began. */
  held: number
}

/** Options of {@link Server.drain}. */
export interface DrainOptions extends SignalOptions {
  /** Told each time the number of refs still held for others changes. */
  onProgress?: (remaining: number) => void
}

/** What {@link Server.store} resolves to. */
export interface StoreResult {
  key: string
  size: number
  /** Lowercase hex SHA-256 of the whole object. */
  sha256: string
  version: number
  /** Node ids that acknowledged a verified, durable copy of every chunk and the manifest. */
  replicas: string[]
  /** Node ids the object is placed on: those not among `replicas` get their copy in the background. */
  placed: string[]
}

/** Options of {@link Server.read}. */
export interface ReadOptions {
  /** First byte (default 0). */
  offset?: number
  /** How many bytes (default: to the end). */
  length?: number
  signal?: AbortSignal
}

/** What {@link Server.stat} resolves to. */
export interface ObjectStat {
  key: string
  size: number
  sha256: string
  chunks: number
  version: number
  updatedAt: number
  /** Peers that acknowledged this version. */
  replicas: string[]
  /** The metadata stored with this version (`{}` when none was). */
  metadata: ObjectMetadata
}

/** Options of {@link Server.list}. */
export interface ListOptions {
  prefix?: string
  /** At most this many (default 1000). */
  limit?: number
  /** Only keys after this one (the last key of the previous page). */
  after?: string
}

/** One entry of {@link Server.list}. */
export interface ListEntry {
  key: string
  size: number
  sha256: string
  version: number
  updatedAt: number
  /** The metadata stored with this version (`{}` when none was). */
  metadata: ObjectMetadata
}

/** A source of {@link Server.compose}: a key, and the version it must be at (else `ERR_PRECONDITION`). */
export interface ComposeSource {
  key: string
  /** The version the source must be at, e.g. the one an {@link OpenObject} was checked at. */
  version?: number
}

/** One version of an object, from {@link Server.open}. */
export interface OpenObject {
  /** That version's state (as {@link Server.stat} gave it when it was opened). */
  readonly stat: ObjectStat
  /** A `Readable` of that version, or of a range of it; `offset` and `length` as for {@link Server.read}. */
  read(options?: ReadOptions): Readable
  /** Lets that version's chunks go (a newer version may have freed them); its reads should have ended. */
  close(): void
}

/** What {@link Server.delete} resolves to. */
export interface DeleteResult {
  /** Peers that removed the ref. */
  acknowledged: string[]
  /** Known peers that did not (yet): they get the tombstone when they reconnect. */
  pending: string[]
}

/** A chunk fetched from a peer, verified, and written back locally. */
export interface HealedEvent {
  key: string
  plainId: string
  /** The peer it came from. */
  from: string
}

/** A peer could not be dialled at this address: a bootstrap address (dialled again with backoff), or a known member's. */
export interface DialErrorEvent {
  address: string
  /** The error's code, e.g. `ERR_PEER_UNAUTHORIZED` when the peer refused this node's cluster secret. */
  code?: string
  message: string
}

/**
 * Background work for a connected peer failed in a way that may pass (its disk was full, a request
 * timed out, a stream was reset): catch-up with it runs again in `retryIn` ms, and keeps doing so,
 * backing off from 0.5 s to 30 s, until it succeeds or the connection closes.
 */
export interface BehindEvent {
  nodeId: string
  retryIn: number
  /** What failed. */
  message: string
}

/** Events of a {@link Server}. */
export interface ServerEvents {
  /** Dialling a peer failed, a bootstrap address or a known member's (each failed attempt). */
  'dial:error': [DialErrorEvent]
  'peer:connect': [PeerInfo]
  'peer:disconnect': [PeerInfo]
  healed: [HealedEvent]
  /** Catch-up with a peer finished (replicas and tombstones sent, lost refs recovered). */
  synced: [{ nodeId: string }]
  /** A connected peer missed background work; catch-up with it runs again later. */
  'peer:behind': [BehindEvent]
  /** A node this node did not know joined the cluster. */
  'node:joined': [{ nodeId: string }]
  /** A node was unseen longer than `lostAfter`: its copies are made again elsewhere. */
  'node:lost': [{ nodeId: string; lastSeen: number }]
  /** A lost node was seen again: it counts again, and the copies made in its stead are released. */
  'node:returned': [{ nodeId: string }]
  /** Placement settled after copies were made or released. */
  'repair:done': [RepairDoneEvent]
}

/** What {@link Server.scrub} resolves to. */
export interface ScrubResult {
  /** Objects read back whole and verified. */
  objects: number
  /** Bytes verified. */
  bytes: number
  /** Chunks (and manifests) that were missing or damaged locally and were healed from a peer. */
  healed: number
  /** Objects that could not be verified (typically `ERR_UNAVAILABLE`: no peer could supply a lost chunk). */
  failed: Array<{ key: string; code?: string; message: string }>
  /** Copies on peers challenged to prove they still hold the bytes (see {@link ScrubOptions.audit}). */
  audited: number
  /** Copies that failed: no longer counted as held, and being replicated to that peer again. */
  lostCopies: Array<{ key: string; nodeId: string; reason: string }>
}

/** Options of {@link Server.scrub}. */
export interface ScrubOptions extends SignalOptions {
  /**
   * How many copies that connected peers acknowledged to challenge, picked at random (default 64; 0 for none):
   * each must prove, with a fresh nonce, that it still holds one of the object's blobs.
   */
  audit?: number
}

/** Options taking only a signal. */
export interface SignalOptions {
  signal?: AbortSignal
}

/** Options of {@link Server.store} and {@link Server.compose}. */
export interface StoreOptions extends SignalOptions {
  /**
   * Kept with this version, inside its encrypted manifest: lowercase names to string values, at most 8 KiB
   * as JSON (`ERR_INVALID_OPTIONS` beyond). A function is called once, after the data has been read to its
   * end (for digests computed while streaming).
   */
  metadata?: ObjectMetadata | (() => ObjectMetadata)
  /**
   * Checked under the key's lock when the store starts and again right before its commit, with the key's
   * current version (`undefined` when it has none): `false` fails the store with `ERR_PRECONDITION`, leaving
   * nothing behind. E.g. `(current) => current === undefined` stores only a new key.
   */
  precondition?: (current: ObjectStat | undefined) => boolean
}

/** A dcas node: stores, reads and deletes objects, replicating them encrypted to its peers. */
export interface Server extends EventEmitter<ServerEvents> {
  /** This node's id (after {@link Server.start}). */
  readonly nodeId: string
  /** The bound address (after {@link Server.start}). */
  readonly address: string
  /** Opens the data directory, listens, and starts dialling the bootstrap peers. */
  start(): Promise<void>
  /** Finishes in-flight stores and deletes, fails reads with `ERR_CLOSED`, and releases everything. */
  close(): Promise<void>
  /** Known peers and whether they are connected. */
  peers(): PeerInfo[]
  /** Resolves once at least `count` peers are connected and have introduced themselves (sent their first peer records). */
  waitForPeers(count: number, options?: SignalOptions): Promise<void>
  /**
   * Resolves once background work with every connected peer (catch-up, late replication, and the retries
   * of a catch-up that failed, see `peer:behind`) has finished. For a peer that keeps failing it waits for
   * its first eight retries (about a minute and a half); later ones go on in the background.
   */
  waitForSync(options?: SignalOptions): Promise<void>
  /** Stores `data` as a new version of `key`; see {@link StoreOptions}. */
  store(key: string, data: StoreData, options?: StoreOptions): Promise<StoreResult>
  /**
   * Makes a new version of `key` from the current versions of `sources`, in order, sharing their chunks: no
   * chunk is copied (the sources are read once, verified, to compute the whole object's SHA-256). A missing
   * source fails with `ERR_NOT_FOUND`, a source not at the version asked for with `ERR_PRECONDITION`. `sources`
   * may name `key` itself.
   */
  compose(key: string, sources: Array<string | ComposeSource>, options?: StoreOptions): Promise<StoreResult>
  /** A `Readable` of the object's current version, or of a range of it; it never yields unverified bytes. */
  read(key: string, options?: ReadOptions): Readable
  /**
   * Resolves `key` once, to its current version: its `stat`, and reads of exactly that version however the
   * key changes meanwhile (its chunks are kept until {@link OpenObject.close}). For answers whose headers and
   * body must agree, such as an HTTP GET.
   */
  open(key: string, options?: SignalOptions): Promise<OpenObject>
  has(key: string): Promise<boolean>
  stat(key: string): Promise<ObjectStat>
  list(options?: ListOptions): Promise<ListEntry[]>
  delete(key: string, options?: SignalOptions): Promise<DeleteResult>
  /** Reads every local object through the verified read path, healing lost or damaged chunks from peers. */
  scrub(options?: ScrubOptions): Promise<ScrubResult>
  /** How placement stands: copies per object, what is left to repair or move, and whether it is settled. */
  placementStatus(): Promise<PlacementStatus>
  /** Resolves once placement is settled: every object on its placed holders, nothing left to copy or release. */
  waitForPlacement(options?: SignalOptions): Promise<void>
  /**
   * Drains this node before it leaves for good: it tells the cluster it is leaving (it is then placed on
   * nothing), and resolves once the owners of the replicas it holds have copied them elsewhere and released
   * them here. It keeps serving meanwhile; close it afterwards.
   */
  drain(options?: DrainOptions): Promise<DrainResult>
}

