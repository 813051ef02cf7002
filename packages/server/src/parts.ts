// The parts of a started server: made from the options in their order (the data directory, the
// index and stores, the transport, then each part with the callbacks that wire it to the others).
import type { EventEmitter } from 'node:events'
import { mkdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { loadOrCreateIdentity, type Transport } from '@dcas/p2p'
import { openBlobStore, openIndex, type BlobStore, type Index } from '@dcas/store'
import { Auditor } from './audit.js'
import { Background } from './background.js'
import { Catalogue } from './catalogue.js'
import type { Chunker } from './chunker.js'
import { BlobCipher } from './cipher.js'
import { RateLimiter } from './concurrency.js'
import { Deadlines } from './deadlines.js'
import { Deleter } from './delete.js'
import { InvalidOptionsError } from './errors.js'
import { Fetcher } from './fetcher.js'
import { Gossip } from './gossip.js'
import { Holder } from './holder.js'
import { Introductions } from './introductions.js'
import { LocalStore } from './local.js'
import type { KeyLocks } from './locks.js'
import type { Logger } from './logger.js'
import { Membership } from './membership.js'
import { migrate } from './migrate.js'
import { signerOf } from './peer-record.js'
import { Peers } from './peers.js'
import { Placement, type PlacementPolicy } from './placement.js'
import { ReadPath } from './read.js'
import { Repairer } from './repair.js'
import { Replicator } from './replication.js'
import { Retriever } from './retriever.js'
import { AGE_IDENTITY_FILE, loadOwnerKeys } from './secrets.js'
import { announcedAddresses, nodeTcpTransport } from './settings.js'
import { timeoutSignal } from './signals.js'
import { CatchUp } from './sync.js'
import type { PeerInfo, ServerEvents, ServerOptions } from './types.js'
import { WritePath } from './write.js'

/** The parts of a started server. */
export interface Parts {
  transport: Transport
  index: Index
  blobs: BlobStore
  local: LocalStore
  catalogue: Catalogue
  holder: Holder
  peers: Peers
  membership: Membership
  gossip: Gossip
  placement: Placement
  repair: Repairer
  background: Background
  catchUp: CatchUp
  writes: WritePath
  reads: ReadPath
  deleter: Deleter
  /** Waiters told when the refs held for other owners change (a drain). */
  held: Set<() => void>
  auditor: Auditor
  introductions: Introductions
}

/** What the server works out from its options when it is made, and the parts share with it. */
export interface PartsSettings {
  policy: PlacementPolicy
  lostAfter: number
  chunker: Chunker
  concurrency: number
  /** The server's locks per key: its public calls take them, and so do the parts. */
  keyLocks: KeyLocks
  log: Logger
}

/** What the wiring needs from the server, each read when a part calls it. */
export interface PartsHooks {
  /** The server's events: the parts emit on them. */
  events: EventEmitter<ServerEvents>
  /** Whether the server is open. */
  running: () => boolean
  /** Whether the server takes connections (open, or starting). */
  accepting: () => boolean
  /** Aborted when the server closes. */
  shutdown: AbortSignal
  /** The parts, once made: callbacks made before the parts they name reach them through it. */
  parts: () => Parts | undefined
  /** The address the server listens on, once it does. */
  address: () => string | undefined
}

/** One peer as {@link PeerInfo}. */
export function infoOf({ peers, membership }: Parts, nodeId: string): PeerInfo {
  const record = membership.record(nodeId)
  const address = peers.dialledAt(nodeId) ?? record?.addresses[0]
  const connected = peers.connection(nodeId) !== undefined
  return {
    nodeId,
    ...(address === undefined ? {} : { address }),
    connected,
    state: membership.stateOf(nodeId),
    ...(record?.zone === undefined ? {} : { zone: record.zone }),
    ...(record?.capacity === undefined ? {} : { capacity: record.capacity }),
    lastSeen: membership.lastSeen(nodeId),
  }
}

/**
 * Makes the parts of a server from its options: opens the data directory under `options.root` (and
 * upgrades it), the transport, and every part wired to the others. Nothing listens or dials yet.
 */
export async function assembleParts(options: ServerOptions, settings: PartsSettings, hooks: PartsHooks): Promise<Parts> {
  const { policy, lostAfter, chunker, concurrency, keyLocks, log } = settings
  const { events, running, shutdown } = hooks
  const { root } = options
  const identityDir = join(root, 'identity')
  await mkdir(join(root, 'replicas'), { recursive: true })
  // A node with an identity from before and an empty index lost it (or was restored from identity/ alone).
  const restored = await stat(join(identityDir, AGE_IDENTITY_FILE)).then(() => true, () => false)
  const keys = await loadOwnerKeys(identityDir)
  const recoveryRecipients = options.recoveryRecipients ?? []
  for (const r of recoveryRecipients) if (!r.startsWith('age1')) throw new InvalidOptionsError(`recovery recipient "${r}" is not an age1… recipient`)
  const index = await openIndex({ path: join(root, 'index') })
  const blobs = await openBlobStore({ root })
  const local = new LocalStore({ index, blobs, log, concurrency })
  const emptyAtStart = restored && [...index.refs.entries({ limit: 1 })].length === 0 && [...index.tombstones.entries({ limit: 1 })].length === 0
  // Holder requests of another protocol (peer records) go to gossip, made below.
  const routes: ConstructorParameters<typeof Holder>[0]['routes'] = {}
  const held = new Set<() => void>()
  const holder = new Holder({ root, index, log, routes, onRefsChanged: () => held.forEach((f) => f()), ...(options.holderLimits === undefined ? {} : { limits: options.holderLimits }) })
  await local.sweepOrphans()
  await holder.open()
  const identity = await loadOrCreateIdentity(identityDir)
  const transport = options.transport ?? (await nodeTcpTransport(options, identityDir, identity, log))
  if (transport.nodeId !== identity.nodeId) log.warn({ nodeId: transport.nodeId }, "the transport's node id is not identity/'s: this node publishes no signed peer record")

  const info = (nodeId: string): PeerInfo => infoOf(hooks.parts()!, nodeId)
  const requestTimeout = options.requestTimeout ?? 30_000
  const maxConnections = options.maxConnections ?? 64
  const deadlines = new Deadlines(requestTimeout, shutdown)
  const background = new Background({ log, running, current: (conn) => peers.connection(conn.remoteNodeId) === conn, onBehind: (e) => events.emit('peer:behind', e) })
  const membership: Membership = new Membership({
    index,
    peersTable: local.tables.peers,
    self: transport.nodeId,
    signer: transport.nodeId === identity.nodeId ? signerOf(identity.privateKey) : undefined,
    announce: () => announcedAddresses(options.announce, hooks.address()),
    zone: options.zone,
    capacity: options.capacity,
    lostAfter,
    connected: (nodeId) => peers.connection(nodeId) !== undefined,
    log,
    events: {
      joined: (nodeId) => {
        events.emit('node:joined', { nodeId })
        peers.maintain()
        void hooks.parts()?.introductions.sweep()
      },
      lost: (nodeId, lastSeen) => events.emit('node:lost', { nodeId, lastSeen }),
      returned: (nodeId) => {
        peers.retryNow(nodeId)
        events.emit('node:returned', { nodeId })
      },
      changed: () => {
        peers.notify()
        peers.maintain()
        hooks.parts()?.repair.changed()
      },
      signed: (record) => hooks.parts()?.gossip.signed(record),
      introduced: (nodeId) => {
        const conn = peers.connection(nodeId)
        if (conn !== undefined) hooks.parts()!.introductions.introduced(conn)
      },
    },
  })
  const peers: Peers = new Peers({
    transport,
    index,
    table: local.tables.peers,
    log,
    accepting: hooks.accepting,
    signal: shutdown,
    members: () => membership.members(),
    addresses: (nodeId) => membership.addresses(nodeId),
    maxConnections,
    introduced: (nodeId) => membership.introduced(nodeId),
    dialTimeout: Math.min(requestTimeout, 10_000),
    events: {
      // Connections come only once the parts are made.
      connected: (conn) => hooks.parts()!.introductions.connected(conn),
      closed: (conn, current) => {
        // A retry due on this connection is moot: the next connection catches up from scratch.
        background.drop(conn.remoteNodeId, conn)
        if (current && membership.disconnected(conn.remoteNodeId)) events.emit('peer:disconnect', info(conn.remoteNodeId))
      },
      dialError: (e) => events.emit('dial:error', e),
    },
  })
  const gossip = new Gossip({ membership, connections: () => peers.connections(), signal: () => timeoutSignal(requestTimeout, shutdown), log })
  routes['members.push'] = (peer, h, ex) => gossip.serve(peer, h, ex)
  const placement = new Placement(policy, peers, (refId, nodeId) => index.peerState.has(`${refId}/${nodeId}`))
  const cipher = new BlobCipher(keys, local, recoveryRecipients)
  const fetcher = new Fetcher(placement, deadlines, background)
  const retriever = new Retriever({ local, cipher, fetcher, log, macKey: keys.manifestKey, onHealed: (e) => events.emit('healed', e) })
  const catalogue = new Catalogue({ keys, local, cipher, fetcher, retriever, placement, keyLocks, deadlines, log })
  const throttle = new RateLimiter(options.repairRate ?? 64 * 1024 * 1024)
  const pace = (bytes: number): Promise<void> => throttle.take(bytes, shutdown)
  const replicator = new Replicator({ local, cipher, catalogue, retriever, background, keyLocks, deadlines, concurrency, pace, log })
  const deleter = new Deleter({ keys, local, catalogue, placement, membership: peers, background, keyLocks, deadlines, log })
  const onSynced = (nodeId: string): void => {
    hooks.parts()?.introductions.synced(nodeId)
    // Catch-up may have found copies this node had no record of: the census counts them.
    hooks.parts()?.repair.changed()
    events.emit('synced', { nodeId })
  }
  const catchUp = new CatchUp({ keys, local, catalogue, deleter, replicator, placement, background, keyLocks, deadlines, log, onSynced })
  const repair = new Repairer({
    local,
    placement,
    peering: peers,
    replicator,
    deadlines,
    concurrency: options.repairConcurrency ?? 2,
    target: () => (options.replicas === 'all' || options.placement !== undefined ? placement.candidates().length : Math.min(options.replicas ?? 2, placement.candidates().length)),
    log,
    onDone: (e) => events.emit('repair:done', e),
  })
  const writes = new WritePath({
    keys,
    local,
    cipher,
    catalogue,
    placement,
    replicator,
    retriever,
    chunker,
    writeQuorum: options.writeQuorum ?? 1,
    concurrency,
    shutdown,
    log,
  })
  const reads = new ReadPath({ catalogue, retriever, concurrency, shutdown })
  await migrate(local, catalogue, keyLocks, keys.manifestKey, log)
  const auditor = new Auditor({ local, cipher, membership: peers, replicator, deadlines, log })
  const introductions = new Introductions({
    holder,
    membership,
    gossip,
    peers,
    background,
    catchUp,
    repair,
    events,
    infoOf: info,
    lostAfter,
    maxConnections,
    emptyAtStart,
    running,
    shutdown,
    log,
  })
  return { transport, index, blobs, local, catalogue, holder, peers, membership, gossip, placement, repair, background, catchUp, writes, reads, deleter, held, auditor, introductions }
}
