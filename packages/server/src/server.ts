// The server: builds its parts from the options, owns the lifecycle (start, close) and the public
// events, and hands each call of the public API to the part that does it.
import { EventEmitter, setMaxListeners } from 'node:events'
import { mkdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { loadOrCreateIdentity, type Transport } from '@dcas/p2p'
import { openBlobStore, openIndex, type BlobStore, type Index } from '@dcas/store'
import { Background } from './background.js'
import { Catalogue } from './catalogue.js'
import { fixedSizeChunker, DEFAULT_CHUNK_SIZE, type Chunker } from './chunker.js'
import { BlobCipher } from './cipher.js'
import { Deadlines } from './deadlines.js'
import { Deleter } from './delete.js'
import { drainNode } from './drain.js'
import { RateLimiter } from './concurrency.js'
import { ClosedError, InvalidOptionsError, NotFoundError, throwIfAborted } from './errors.js'
import { Fetcher } from './fetcher.js'
import { Gossip } from './gossip.js'
import { CallerWork } from './caller-work.js'
import { Holder } from './holder.js'
import { Introductions } from './introductions.js'
import { assertValidKey } from './key.js'
import { LocalStore, metaOf } from './local.js'
import { KeyLocks } from './locks.js'
import { silentLogger, type Logger } from './logger.js'
import { Membership } from './membership.js'
import { signerOf } from './peer-record.js'
import { everyPeer, Placement, rendezvous, type PlacementPolicy } from './placement.js'
import { Peers } from './peers.js'
import { Repairer } from './repair.js'
import { ReadPath } from './read.js'
import { Replicator } from './replication.js'
import { migrate } from './migrate.js'
import { Retriever, type HealObserver } from './retriever.js'
import { DEFAULT_AUDIT_SAMPLE, scrub } from './scrub.js'
import { Auditor } from './audit.js'
import { AGE_IDENTITY_FILE, loadOwnerKeys } from './secrets.js'
import type { StoreData } from './source.js'
import { announcedAddresses, checkServerOptions, nodeTcpTransport } from './settings.js'
import { CatchUp } from './sync.js'
import type { ComposeSource, DeleteResult, DrainOptions, DrainResult, ListEntry, ListOptions, ObjectStat, OpenObject, PeerInfo, PlacementStatus, ReadOptions, ScrubOptions, ScrubResult, Server, ServerEvents, ServerOptions, SignalOptions, StoreOptions, StoreResult } from './types.js'
import { WritePath } from './write.js'
import { anySignal, timeoutSignal } from './signals.js'

export type * from './types.js'

/** Creates a server; call {@link Server.start} next. */
export function createServer(options: ServerOptions): Server {
  return new DcasServer(options)
}

/** The range a read asks for, checked. */
function rangeOf(options: ReadOptions): { offset: number; length: number | undefined } {
  const { offset = 0, length } = options
  if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidOptionsError(`offset must be a non-negative integer, got ${offset}`)
  if (length !== undefined && (!Number.isSafeInteger(length) || length < 0)) throw new InvalidOptionsError(`length must be a non-negative integer, got ${length}`)
  return { offset, length }
}

/** The parts of a started server. */
interface Parts {
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

class DcasServer extends EventEmitter<ServerEvents> implements Server {
  readonly #options: ServerOptions
  readonly #log: Logger
  readonly #chunker: Chunker
  readonly #concurrency: number
  readonly #keyLocks = new KeyLocks()
  readonly #work = new CallerWork()
  readonly #shutdown = new AbortController()
  #state: 'new' | 'starting' | 'open' | 'closing' | 'closed' = 'new'
  #parts: Parts | undefined
  #address: string | undefined

  readonly #policy: PlacementPolicy
  readonly #lostAfter: number

  constructor(options: ServerOptions) {
    super()
    checkServerOptions(options)
    const replicas = options.replicas ?? 2
    // Every dial loop and pending dial of a large cluster listens for the shutdown.
    setMaxListeners(0, this.#shutdown.signal)
    this.#policy = options.placement ?? (replicas === 'all' ? everyPeer : rendezvous({ replicas }))
    this.#lostAfter = options.lostAfter ?? 30 * 60_000
    this.#options = options
    this.#log = options.logger ?? silentLogger
    this.#chunker = options.chunker ?? fixedSizeChunker(options.chunkSize ?? DEFAULT_CHUNK_SIZE)
    this.#concurrency = options.concurrency ?? 4
  }

  get nodeId(): string {
    if (this.#parts === undefined) throw new ClosedError('the server is not started')
    return this.#parts.transport.nodeId
  }

  get address(): string {
    if (this.#address === undefined) throw new ClosedError('the server is not started')
    return this.#address
  }

  async start(): Promise<void> {
    if (this.#state !== 'new') throw new ClosedError(`start() was already called (the server is ${this.#state})`)
    this.#state = 'starting'
    const { root } = this.#options
    const identityDir = join(root, 'identity')
    await mkdir(join(root, 'replicas'), { recursive: true })
    // A node with an identity from before and an empty index lost it (or was restored from identity/ alone).
    const restored = await stat(join(identityDir, AGE_IDENTITY_FILE)).then(() => true, () => false)
    const keys = await loadOwnerKeys(identityDir)
    const recoveryRecipients = this.#options.recoveryRecipients ?? []
    for (const r of recoveryRecipients) if (!r.startsWith('age1')) throw new InvalidOptionsError(`recovery recipient "${r}" is not an age1… recipient`)
    const index = await openIndex({ path: join(root, 'index') })
    const blobs = await openBlobStore({ root })
    const log = this.#log
    const local = new LocalStore({ index, blobs, log, concurrency: this.#concurrency })
    const emptyAtStart = restored && [...index.refs.entries({ limit: 1 })].length === 0 && [...index.tombstones.entries({ limit: 1 })].length === 0
    // Holder requests of another protocol (peer records) go to gossip, made below.
    const routes: ConstructorParameters<typeof Holder>[0]['routes'] = {}
    const held = new Set<() => void>()
    const holder = new Holder({ root, index, log, routes, onRefsChanged: () => held.forEach((f) => f()), ...(this.#options.holderLimits === undefined ? {} : { limits: this.#options.holderLimits }) })
    await local.sweepOrphans()
    await holder.open()
    const identity = await loadOrCreateIdentity(identityDir)
    const transport = this.#options.transport ?? (await nodeTcpTransport(this.#options, identityDir, identity, log))
    if (transport.nodeId !== identity.nodeId) log.warn({ nodeId: transport.nodeId }, "the transport's node id is not identity/'s: this node publishes no signed peer record")

    const running = (): boolean => this.#state === 'open'
    const requestTimeout = this.#options.requestTimeout ?? 30_000
    const maxConnections = this.#options.maxConnections ?? 64
    const deadlines = new Deadlines(requestTimeout, this.#shutdown.signal)
    const background = new Background({ log, running, current: (conn) => peers.connection(conn.remoteNodeId) === conn, onBehind: (e) => this.emit('peer:behind', e) })
    const membership: Membership = new Membership({
      index,
      peersTable: local.tables.peers,
      self: transport.nodeId,
      signer: transport.nodeId === identity.nodeId ? signerOf(identity.privateKey) : undefined,
      announce: () => announcedAddresses(this.#options.announce, this.#address),
      zone: this.#options.zone,
      capacity: this.#options.capacity,
      lostAfter: this.#lostAfter,
      connected: (nodeId) => peers.connection(nodeId) !== undefined,
      log,
      events: {
        joined: (nodeId) => {
          this.emit('node:joined', { nodeId })
          peers.maintain()
          void this.#parts?.introductions.sweep()
        },
        lost: (nodeId, lastSeen) => this.emit('node:lost', { nodeId, lastSeen }),
        returned: (nodeId) => {
          peers.retryNow(nodeId)
          this.emit('node:returned', { nodeId })
        },
        changed: () => {
          peers.notify()
          peers.maintain()
          this.#parts?.repair.changed()
        },
        signed: (record) => this.#parts?.gossip.signed(record),
        introduced: (nodeId) => {
          const conn = peers.connection(nodeId)
          if (conn !== undefined) this.#parts!.introductions.introduced(conn)
        },
      },
    })
    const peers: Peers = new Peers({
      transport,
      index,
      table: local.tables.peers,
      log,
      accepting: () => this.#state === 'open' || this.#state === 'starting',
      signal: this.#shutdown.signal,
      members: () => membership.members(),
      addresses: (nodeId) => membership.addresses(nodeId),
      maxConnections,
      introduced: (nodeId) => membership.introduced(nodeId),
      dialTimeout: Math.min(requestTimeout, 10_000),
      events: {
        // Connections come only once the parts are made.
        connected: (conn) => this.#parts!.introductions.connected(conn),
        closed: (conn, current) => {
          // A retry due on this connection is moot: the next connection catches up from scratch.
          background.drop(conn.remoteNodeId, conn)
          if (current && membership.disconnected(conn.remoteNodeId)) this.emit('peer:disconnect', this.#infoOf(conn.remoteNodeId))
        },
        dialError: (e) => this.emit('dial:error', e),
      },
    })
    const gossip = new Gossip({ membership, connections: () => peers.connections(), signal: () => timeoutSignal(requestTimeout, this.#shutdown.signal), log })
    routes['members.push'] = (peer, h, ex) => gossip.serve(peer, h, ex)
    const placement = new Placement(this.#policy, peers, (refId, nodeId) => index.peerState.has(`${refId}/${nodeId}`))
    const cipher = new BlobCipher(keys, local, recoveryRecipients)
    const fetcher = new Fetcher(placement, deadlines, background)
    const retriever = new Retriever({ local, cipher, fetcher, log, macKey: keys.manifestKey, onHealed: (e) => this.emit('healed', e) })
    const keyLocks = this.#keyLocks
    const catalogue = new Catalogue({ keys, local, cipher, fetcher, retriever, placement, keyLocks, deadlines, log })
    const throttle = new RateLimiter(this.#options.repairRate ?? 64 * 1024 * 1024)
    const pace = (bytes: number): Promise<void> => throttle.take(bytes, this.#shutdown.signal)
    const replicator = new Replicator({ local, cipher, catalogue, retriever, background, keyLocks, deadlines, concurrency: this.#concurrency, pace, log })
    const deleter = new Deleter({ keys, local, catalogue, placement, membership: peers, background, keyLocks, deadlines, log })
    const onSynced = (nodeId: string): void => {
      this.#parts?.introductions.synced(nodeId)
      // Catch-up may have found copies this node had no record of: the census counts them.
      this.#parts?.repair.changed()
      this.emit('synced', { nodeId })
    }
    const catchUp = new CatchUp({ keys, local, catalogue, deleter, replicator, placement, background, keyLocks, deadlines, log, onSynced })
    const repair = new Repairer({
      local,
      placement,
      peering: peers,
      replicator,
      deadlines,
      concurrency: this.#options.repairConcurrency ?? 2,
      target: () => (this.#options.replicas === 'all' || this.#options.placement !== undefined ? placement.candidates().length : Math.min(this.#options.replicas ?? 2, placement.candidates().length)),
      log,
      onDone: (e) => this.emit('repair:done', e),
    })
    const writes = new WritePath({
      keys,
      local,
      cipher,
      catalogue,
      placement,
      replicator,
      retriever,
      chunker: this.#chunker,
      writeQuorum: this.#options.writeQuorum ?? 1,
      concurrency: this.#concurrency,
      shutdown: this.#shutdown.signal,
      log,
    })
    const reads = new ReadPath({ catalogue, retriever, concurrency: this.#concurrency, shutdown: this.#shutdown.signal })
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
      events: this,
      infoOf: (nodeId) => this.#infoOf(nodeId),
      lostAfter: this.#lostAfter,
      maxConnections,
      emptyAtStart,
      running: () => this.#state === 'open',
      shutdown: this.#shutdown.signal,
      log,
    })
    this.#parts = { transport, index, blobs, local, catalogue, holder, peers, membership, gossip, placement, repair, background, catchUp, writes, reads, deleter, held, auditor, introductions }

    membership.open()
    this.#address = await transport.listen(this.#options.listen ?? '127.0.0.1:0', (conn) => peers.adopt(conn))
    membership.start()
    this.#state = 'open'
    log.info({ nodeId: this.nodeId, address: this.#address }, 'listening')
    repair.start()
    for (const address of this.#options.bootstrap ?? []) void peers.dial(address)
    peers.maintain()
    void introductions.sweep()
  }

  /** One peer as {@link PeerInfo}. */
  #infoOf(nodeId: string): PeerInfo {
    const { peers, membership } = this.#parts!
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

  async close(): Promise<void> {
    if (this.#state === 'closed' || this.#state === 'closing') return
    this.#state = 'closing'
    this.#shutdown.abort(new ClosedError())
    await this.#work.settle()
    const parts = this.#parts
    if (parts !== undefined) {
      parts.membership.close()
      await parts.repair.close()
      await parts.background.close()
      await parts.local.drain()
      // Peers get a few seconds to finish their streams with us, then the connections are cut (each listens to the signal).
      const grace = AbortSignal.timeout(5_000)
      setMaxListeners(0, grace)
      await parts.transport.close({ signal: grace })
      await parts.holder.close()
      await parts.blobs.close()
      await parts.index.close()
    }
    this.#state = 'closed'
  }

  peers(): PeerInfo[] {
    if (this.#parts === undefined) return []
    return this.#parts.membership.members().map((m) => this.#infoOf(m.nodeId))
  }

  async waitForPeers(count: number, options: SignalOptions = {}): Promise<void> {
    await this.#open().peers.waitFor(count, options.signal)
  }

  async waitForSync(options: SignalOptions = {}): Promise<void> {
    const { background, introductions } = this.#started()
    // A peer connected but not yet introduced gets its catch-up once it is: that catch-up counts too.
    await introductions.waitForIntroductions(options.signal)
    await background.waitForSync(options.signal)
  }

  async store(key: string, data: StoreData, options: StoreOptions = {}): Promise<StoreResult> {
    assertValidKey(key)
    throwIfAborted(options.signal)
    return this.#track(async (parts) => {
      try {
        return await this.#keyLocks.run(key, (held) => parts.writes.store(held, data, options))
      } finally {
        // A store short of its placed holders is repaired in the background.
        await parts.repair.noteWrite(key).catch(() => {})
      }
    })
  }


  async compose(key: string, sources: Array<string | ComposeSource>, options: StoreOptions = {}): Promise<StoreResult> {
    assertValidKey(key)
    if (!Array.isArray(sources) || sources.length === 0) throw new InvalidOptionsError('compose needs at least one source key')
    const wanted = sources.map((s) => (typeof s === 'string' ? { key: s } : s))
    for (const source of wanted) {
      assertValidKey(source.key)
      if (source.version !== undefined && (!Number.isSafeInteger(source.version) || source.version < 1)) throw new InvalidOptionsError(`a source's version must be a positive integer, got ${source.version}`)
    }
    return this.#track(async (parts) => {
      try {
        return await this.#keyLocks.run(key, (held) => parts.writes.compose(held, wanted, options))
      } finally {
        await parts.repair.noteWrite(key).catch(() => {})
      }
    })
  }

  read(key: string, options: ReadOptions = {}): Readable {
    assertValidKey(key)
    const { offset, length } = rangeOf(options)
    return this.#read(key, offset, length, options.signal)
  }

  async open(key: string, options: SignalOptions = {}): Promise<OpenObject> {
    assertValidKey(key)
    throwIfAborted(options.signal)
    return this.#track(async (parts) => {
      const signal = anySignal(options.signal, this.#shutdown.signal)
      const { record, manifest } = await parts.catalogue.resolve(key, signal)
      const { refId } = metaOf(record)
      // That version's blobs stay while it is open, whatever happens to the key.
      const pinned = [...new Set(manifest.chunks.map((c) => c.plainId)), record.manifestId]
      for (const id of pinned) parts.local.pin(id)
      const hold = this.#work.hold(() => {
        for (const id of pinned) parts.local.unpin(id)
      })
      return {
        stat: parts.catalogue.statOf(key, record),
        read: (o: ReadOptions = {}) => {
          if (!hold.held()) throw new ClosedError('this version was closed')
          const { offset, length } = rangeOf(o)
          return this.#readable(() => parts.reads.stream(key, refId, manifest, offset, length, o.signal, undefined))
        },
        close: hold.close,
      }
    })
  }

  /** A verified read as a Readable that close() ends; `observer` is told of each chunk it heals. */
  #read(key: string, offset: number, length: number | undefined, signal: AbortSignal | undefined, observer?: HealObserver): Readable {
    return this.#readable(() => this.#parts!.reads.read(key, offset, length, signal, observer))
  }

  /** The bytes of `source` as a Readable that close() waits for, and ends with ERR_CLOSED. */
  #readable(source: () => AsyncGenerator<Uint8Array>): Readable {
    if (this.#state !== 'open') throw new ClosedError()
    return this.#work.readable(source)
  }

  async has(key: string): Promise<boolean> {
    assertValidKey(key)
    return Promise.resolve(this.#started().index.refs.has(key))
  }

  async stat(key: string): Promise<ObjectStat> {
    assertValidKey(key)
    const stat = this.#started().catalogue.stat(key)
    if (stat === undefined) throw new NotFoundError(`no object is stored under "${key}"`)
    return Promise.resolve(stat)
  }

  async list(options: ListOptions = {}): Promise<ListEntry[]> {
    const { index } = this.#started()
    const limit = options.limit ?? 1000
    if (!Number.isSafeInteger(limit) || limit < 1) throw new InvalidOptionsError(`limit must be a positive integer, got ${limit}`)
    const out: ListEntry[] = []
    const range = { limit, ...(options.prefix === undefined ? {} : { prefix: options.prefix }), ...(options.after === undefined ? {} : { after: options.after }) }
    for (const [key, r] of index.refs.entries(range)) out.push({ key, size: r.size, sha256: r.sha256, version: r.version, updatedAt: r.updatedAt, metadata: metaOf(r).metadata ?? {} })
    return Promise.resolve(out)
  }

  async delete(key: string, options: SignalOptions = {}): Promise<DeleteResult> {
    assertValidKey(key)
    throwIfAborted(options.signal)
    return this.#track(async (parts) => {
      try {
        return await this.#keyLocks.run(key, (held) => parts.deleter.delete(held, options.signal))
      } finally {
        await parts.repair.noteWrite(key).catch(() => {})
      }
    })
  }

  async scrub(options: ScrubOptions = {}): Promise<ScrubResult> {
    throwIfAborted(options.signal)
    if (this.#state !== 'open') throw new ClosedError()
    const sample = options.audit ?? DEFAULT_AUDIT_SAMPLE
    if (!Number.isSafeInteger(sample) || sample < 0) throw new InvalidOptionsError(`audit must be a non-negative integer, got ${sample}`)
    const { auditor } = this.#parts!
    const source = {
      audit: (n: number, signal: AbortSignal | undefined) => auditor.audit(n, signal),
      list: (o: ListOptions) => this.list(o),
      read: (key: string, signal: AbortSignal | undefined, observer: HealObserver) => this.#read(key, 0, undefined, signal, observer),
      open: () => this.#state === 'open',
    }
    return scrub(source, options.signal, this.#log, sample)
  }

  async placementStatus(): Promise<PlacementStatus> {
    return this.#open().repair.status()
  }

  async waitForPlacement(options: SignalOptions = {}): Promise<void> {
    await this.#open().repair.waitSettled(options.signal)
  }

  async drain(options: DrainOptions = {}): Promise<DrainResult> {
    throwIfAborted(options.signal)
    return this.#track((parts) => drainNode(parts, options, this.#shutdown.signal, this.#log))
  }

  /** The parts, once started (a closed server's index is closed: its calls fail in the index). */
  #started(): Parts {
    if (this.#parts === undefined) throw new ClosedError('the server is not started')
    return this.#parts
  }

  /** The parts of an open server. */
  #open(): Parts {
    if (this.#state !== 'open' && this.#state !== 'starting') throw new ClosedError(this.#state === 'new' ? 'the server is not started' : undefined)
    return this.#started()
  }

  /** Runs an operation so that `close()` waits for it. */
  async #track<T>(fn: (parts: Parts) => Promise<T>): Promise<T> {
    if (this.#state !== 'open') throw new ClosedError(this.#state === 'new' || this.#state === 'starting' ? 'the server is not started' : undefined)
    const parts = this.#parts!
    return this.#work.track(() => fn(parts))
  }
}
