import { createHash } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { mkdir, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { setTimeout as delay } from 'node:timers/promises'
import { decryptBytes, encryptBytes } from '@dcas/crypto'
import { loadOrCreateIdentity, tcpTransport, type Connection, type Transport } from '@dcas/p2p'
import { openBlobStore, openIndex, type BlobStore, type Index, type IndexTable, type RefRecord } from '@dcas/store'
import { fixedSizeChunker, DEFAULT_CHUNK_SIZE, type Chunker } from './chunker.js'
import { deleteRef, getBlob, getRef, listRefs, missingBlobs, putBlob, putRef, releaseBlobs, type RemoteRef } from './client.js'
import { AbortedError, ClosedError, InvalidOptionsError, NotFoundError, QuorumError, UnavailableError, throwIfAborted } from './errors.js'
import { holderTables, serveRequest, sweepReceived, type HolderContext, type HolderTables } from './holder.js'
import { assertValidKey } from './key.js'
import { KeyedLocks } from './locks.js'
import { silentLogger, type Logger } from './logger.js'
import { chunksInRange, decodeManifest, encodeManifest, sha256Hex, type Manifest, type ManifestChunk } from './manifest.js'
import { loadClusterSecret, loadOwnerKeys, refIdOf, seedOf, type OwnerKeys } from './secrets.js'
import { toByteStream, type StoreData } from './source.js'

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
  /** Any {@link Transport}; default: TCP + TLS 1.3 with the identity in `root/identity`. */
  transport?: Transport
  /** Acknowledgements a store needs: `'all'` connected peers (default) or a number. */
  writeQuorum?: 'all' | number
  /** Extra `age1…` recipients that can also decrypt every replica. */
  recoveryRecipients?: string[]
  /** Chunk size in bytes for the default fixed-size chunker (1 MiB). */
  chunkSize?: number
  /** Replaces the fixed-size chunker. */
  chunker?: Chunker
  /** Per-peer timeout in ms for one request while reading (default 15 s). */
  requestTimeout?: number
  /** Chunks in flight per operation and per peer (default 4). */
  concurrency?: number
  logger?: Logger
}

/** A peer this node knows. */
export interface PeerInfo {
  nodeId: string
  /** The address it is dialled at, when this node dials it. */
  address?: string
  connected: boolean
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

/** Events of a {@link Server}. */
export interface ServerEvents {
  'peer:connect': [PeerInfo]
  'peer:disconnect': [PeerInfo]
  healed: [HealedEvent]
  /** Catch-up with a peer finished (replicas and tombstones sent, lost refs recovered). */
  synced: [{ nodeId: string }]
}

/** Options taking only a signal. */
export interface SignalOptions {
  signal?: AbortSignal
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
  /** Resolves once at least `count` peers are connected. */
  waitForPeers(count: number, options?: SignalOptions): Promise<void>
  /** Resolves once background work with every connected peer (catch-up, late replication) has finished. */
  waitForSync(options?: SignalOptions): Promise<void>
  store(key: string, data: StoreData, options?: SignalOptions): Promise<StoreResult>
  read(key: string, options?: ReadOptions): Readable
  has(key: string): Promise<boolean>
  stat(key: string): Promise<ObjectStat>
  list(options?: ListOptions): Promise<ListEntry[]>
  delete(key: string, options?: SignalOptions): Promise<DeleteResult>
}

/** Creates a server; call {@link Server.start} next. */
export function createServer(options: ServerOptions): Server {
  return new DcasServer(options)
}

interface RefMeta {
  refId: string
  manifestCipherId: string
  chunkCount: number
  recipientsId: string
}

/** The owner's fields of a ref record (written by this server only). */
const metaOf = (record: RefRecord): RefMeta => record.meta as unknown as RefMeta

interface ChunkRecord {
  cipherId: string
  recipientsId: string
}

interface OwnerTables {
  /** key → plain blob ids the ref holds a count on (its chunks and manifest). */
  refBlobs: IndexTable<string[]>
  /** plainId → how it was encrypted. */
  chunks: IndexTable<ChunkRecord>
  /** recipientsId → the recipient list. */
  recipientSets: IndexTable<string[]>
  /** nodeId → where to dial it. */
  peers: IndexTable<{ address?: string; lastSeen: number }>
  /** refId → the highest version a peer reported for a ref this node does not know (a tombstone lost with the index). */
  versionFloors: IndexTable<number>
}

const LOCAL_MISS = new Set(['ERR_NOT_FOUND', 'ERR_INTEGRITY'])
const codeOf = (err: unknown): string | undefined => (err as { code?: string } | undefined)?.code
const message = (err: unknown): string => (err instanceof Error ? err.message : String(err))

/** Up to `limit` promises in flight; the first failure is kept. */
class InFlight {
  readonly #running = new Set<Promise<void>>()
  error: Error | undefined

  constructor(readonly limit: number) {}

  async add(fn: () => Promise<void>): Promise<void> {
    while (this.#running.size >= this.limit) await Promise.race(this.#running)
    const p: Promise<void> = fn()
      .catch((err: unknown) => {
        this.error ??= err instanceof Error ? err : new Error(String(err))
      })
      .finally(() => this.#running.delete(p))
    this.#running.add(p)
  }

  async drain(): Promise<void> {
    while (this.#running.size > 0) await Promise.all(this.#running)
  }
}

class DcasServer extends EventEmitter<ServerEvents> implements Server {
  readonly #options: ServerOptions
  readonly #log: Logger
  readonly #chunker: Chunker
  readonly #concurrency: number
  readonly #requestTimeout: number
  readonly #locks = new KeyedLocks()
  readonly #conns = new Map<string, Connection>()
  readonly #dialed = new Map<string, string>()
  readonly #peerQueues = new Map<string, Promise<void>>()
  readonly #replicaStores = new Map<string, Promise<BlobStore>>()
  readonly #ops = new Set<Promise<unknown>>()
  readonly #shutdown = new AbortController()
  #state: 'new' | 'starting' | 'open' | 'closing' | 'closed' = 'new'
  #transport: Transport | undefined
  #keys: OwnerKeys | undefined
  #index: Index | undefined
  #blobs: BlobStore | undefined
  #tables: OwnerTables | undefined
  #holder: HolderContext | undefined
  #address: string | undefined

  constructor(options: ServerOptions) {
    super()
    if (typeof options?.root !== 'string' || options.root.length === 0) throw new InvalidOptionsError('root (the data directory) is required')
    const quorum = options.writeQuorum ?? 'all'
    if (quorum !== 'all' && (!Number.isSafeInteger(quorum) || quorum < 0)) throw new InvalidOptionsError(`writeQuorum must be 'all' or a non-negative integer, got ${String(quorum)}`)
    this.#options = options
    this.#log = options.logger ?? silentLogger
    this.#chunker = options.chunker ?? fixedSizeChunker(options.chunkSize ?? DEFAULT_CHUNK_SIZE)
    this.#concurrency = options.concurrency ?? 4
    this.#requestTimeout = options.requestTimeout ?? 15_000
  }

  get nodeId(): string {
    if (this.#transport === undefined) throw new ClosedError('the server is not started')
    return this.#transport.nodeId
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
    this.#keys = await loadOwnerKeys(identityDir)
    for (const r of this.#options.recoveryRecipients ?? []) if (!r.startsWith('age1')) throw new InvalidOptionsError(`recovery recipient "${r}" is not an age1… recipient`)
    this.#index = await openIndex({ path: join(root, 'index') })
    this.#blobs = await openBlobStore({ root })
    const index = this.#index
    this.#tables = { refBlobs: index.table('ref_blobs'), chunks: index.table('chunks'), recipientSets: index.table('recipient_sets'), peers: index.table('peers'), versionFloors: index.table('version_floors') }
    const tables: HolderTables = holderTables(index)
    this.#holder = { index, tables, locks: this.#locks, log: this.#log, replicaStore: (owner) => this.#replicaStore(owner) }
    await this.#sweepOrphans()
    const transport = this.#options.transport ?? (await this.#tcpTransport(identityDir))
    this.#transport = transport
    this.#address = await transport.listen(this.#options.listen ?? '127.0.0.1:0', (conn) => this.#adopt(conn))
    this.#state = 'open'
    this.#log.info({ nodeId: this.nodeId, address: this.#address }, 'listening')
    for (const address of this.#options.bootstrap ?? []) void this.#dialLoop(address)
  }

  async #tcpTransport(identityDir: string): Promise<Transport> {
    const clusterSecret = await loadClusterSecret(identityDir, this.#options.clusterSecret)
    const identity = await loadOrCreateIdentity(identityDir)
    return tcpTransport({ identity, clusterSecret, ...(this.#options.allowList === undefined ? {} : { allowList: this.#options.allowList }) })
  }

  async close(): Promise<void> {
    if (this.#state === 'closed' || this.#state === 'closing') return
    this.#state = 'closing'
    this.#shutdown.abort(new ClosedError())
    await Promise.allSettled([...this.#ops])
    await Promise.allSettled([...this.#peerQueues.values()])
    // Peers get a few seconds to finish their streams with us, then the connections are cut.
    await this.#transport?.close({ signal: AbortSignal.timeout(5_000) })
    for (const store of this.#replicaStores.values()) await (await store).close()
    await this.#blobs?.close()
    await this.#index?.close()
    this.#state = 'closed'
  }

  peers(): PeerInfo[] {
    const out = new Map<string, PeerInfo>()
    if (this.#tables !== undefined) {
      for (const [nodeId, rec] of this.#tables.peers.entries()) out.set(nodeId, { nodeId, ...(rec.address === undefined ? {} : { address: rec.address }), connected: false })
    }
    for (const nodeId of this.#conns.keys()) out.set(nodeId, this.#peerInfo(nodeId, true))
    return [...out.values()]
  }

  async waitForPeers(count: number, options: SignalOptions = {}): Promise<void> {
    await this.#until(() => this.#conns.size >= count, ['peer:connect'], options.signal)
  }

  async waitForSync(options: SignalOptions = {}): Promise<void> {
    for (;;) {
      throwIfAborted(options.signal)
      const pending = [...this.#peerQueues.values()]
      if (pending.length === 0) return
      await Promise.race([Promise.allSettled(pending), abortPromise(options.signal)])
    }
  }

  /** Resolves when `done()` holds, re-checking on each of `events`. */
  async #until(done: () => boolean, events: Array<keyof ServerEvents>, signal: AbortSignal | undefined): Promise<void> {
    throwIfAborted(signal)
    if (done()) return
    await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (!done()) return
        cleanup()
        resolve()
      }
      const onAbort = (): void => {
        cleanup()
        reject(new AbortedError(undefined, { cause: signal?.reason }))
      }
      const cleanup = (): void => {
        for (const e of events) this.off(e, check)
        signal?.removeEventListener('abort', onAbort)
      }
      for (const e of events) this.on(e, check)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  // ---- peers --------------------------------------------------------------

  async #dialLoop(address: string): Promise<void> {
    const signal = this.#shutdown.signal
    let backoff = 100
    while (!signal.aborted) {
      try {
        const conn = await this.#transport!.dial(address, { signal })
        backoff = 100
        this.#dialed.set(conn.remoteNodeId, address)
        await this.#rememberPeer(conn.remoteNodeId, address)
        this.#adopt(conn)
        // Whichever connection to that peer survives, dial again only once it is gone.
        await this.#until(() => this.#conns.get(conn.remoteNodeId) === undefined, ['peer:disconnect'], signal)
      } catch (err) {
        if (signal.aborted) return
        this.#log.debug({ address, err: message(err) }, 'dial failed; retrying')
        try {
          await delay(backoff * (0.5 + Math.random()), undefined, { signal })
        } catch {
          return
        }
        backoff = Math.min(backoff * 2, 10_000)
      }
    }
  }

  async #rememberPeer(nodeId: string, address?: string): Promise<void> {
    const tables = this.#tables!
    const known = tables.peers.get(nodeId)
    const next = { ...(known ?? {}), ...(address === undefined ? {} : { address }), lastSeen: Date.now() }
    if (known === undefined || known.address !== next.address) await this.#index!.transaction((tx) => tx.put(tables.peers, nodeId, next))
  }

  #adopt(conn: Connection): void {
    const nodeId = conn.remoteNodeId
    if (this.#state !== 'open' && this.#state !== 'starting') {
      conn.abort(new ClosedError())
      return
    }
    if (nodeId === this.nodeId) {
      conn.abort(new InvalidOptionsError('connected to itself'))
      return
    }
    const existing = this.#conns.get(nodeId)
    if (existing !== undefined && existing.open) {
      // One connection per pair: both sides keep the one dialled by the lower node id.
      const dialer = (c: Connection): string => (c.direction === 'outbound' ? this.nodeId : nodeId)
      const keepNew = dialer(conn) === dialer(existing) || dialer(conn) < dialer(existing)
      if (!keepNew) {
        conn.close().catch(() => conn.abort())
        return
      }
      this.#conns.delete(nodeId)
      existing.close().catch(() => existing.abort())
    }
    this.#conns.set(nodeId, conn)
    if (conn.direction === 'inbound') void this.#rememberPeer(nodeId).catch(() => {})
    const received = new Set<string>()
    void this.#serveIncoming(conn, received)
    void conn.closed.then(async (reason) => {
      if (this.#conns.get(nodeId) === conn) {
        this.#conns.delete(nodeId)
        this.#log.info({ peer: nodeId, reason: reason?.message }, 'peer disconnected')
        this.emit('peer:disconnect', this.#peerInfo(nodeId, false))
      }
      if (this.#holder !== undefined && this.#state === 'open') await sweepReceived(this.#holder, nodeId, received)
    }).catch((err: unknown) => this.#log.warn({ peer: nodeId, err: message(err) }, 'cleaning up after a closed connection failed'))
    this.#log.info({ peer: nodeId, address: conn.remoteAddress, direction: conn.direction }, 'peer connected')
    this.emit('peer:connect', this.#peerInfo(nodeId, true))
    this.#scheduleSync(conn)
  }

  #peerInfo(nodeId: string, connected: boolean): PeerInfo {
    const address = this.#dialed.get(nodeId) ?? this.#tables?.peers.get(nodeId)?.address
    return { nodeId, ...(address === undefined ? {} : { address }), connected }
  }

  async #serveIncoming(conn: Connection, received: Set<string>): Promise<void> {
    try {
      for await (const stream of conn.incoming) void serveRequest(this.#holder!, conn.remoteNodeId, stream, received)
    } catch (err) {
      this.#log.debug({ peer: conn.remoteNodeId, err: message(err) }, 'incoming streams ended')
    }
  }

  /** Connected peers, the ones that hold `refId` first. */
  #connected(refId?: string): Connection[] {
    const conns = [...this.#conns.values()].filter((c) => c.open)
    if (refId === undefined) return conns
    const holds = (c: Connection): number => (this.#index!.peerState.has(`${refId}/${c.remoteNodeId}`) ? 0 : 1)
    return conns.sort((a, b) => holds(a) - holds(b))
  }

  // ---- operations ---------------------------------------------------------

  /** Runs an operation so that `close()` waits for it. */
  async #track<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#state !== 'open') throw new ClosedError(this.#state === 'new' || this.#state === 'starting' ? 'the server is not started' : undefined)
    const p = fn()
    this.#ops.add(p)
    try {
      return await p
    } finally {
      this.#ops.delete(p)
    }
  }

  #recipients(): { recipients: string[]; recipientsId: string } {
    const recipients = [this.#keys!.recipient, ...(this.#options.recoveryRecipients ?? [])]
    return { recipients, recipientsId: sha256Hex(Buffer.from(recipients.join('\n'))) }
  }

  async #encryptBlob(plain: Uint8Array, plainId: string, recipientsId: string, recipients: string[]): Promise<{ cipher: Buffer; cipherId: string }> {
    const cipher = Buffer.from(await encryptBytes(plain, recipients, { seed: seedOf(this.#keys!, plainId, recipientsId) }))
    return { cipher, cipherId: sha256Hex(cipher) }
  }

  async #decryptBlob(cipher: Uint8Array, plainId: string): Promise<Buffer> {
    const plain = Buffer.from(await decryptBytes(cipher, [this.#keys!.identity]))
    if (sha256Hex(plain) !== plainId) throw new UnavailableError(`decrypted bytes do not hash to ${plainId}`)
    return plain
  }

  /** Reads a local blob whole (chunks and manifests are bounded), verified by the store. */
  async #readLocal(id: string, signal?: AbortSignal): Promise<Buffer> {
    const pieces: Uint8Array[] = []
    for await (const piece of this.#blobs!.get(id, signal === undefined ? {} : { signal })) pieces.push(piece)
    return Buffer.concat(pieces)
  }

  /** The ciphertext of a local plaintext blob, re-created deterministically and checked against `cipherId`. */
  async #cipherOf(plainId: string, cipherId: string, recipientsId: string): Promise<Buffer> {
    const recipients = this.#tables!.recipientSets.get(recipientsId)
    if (recipients === undefined) throw new UnavailableError(`unknown recipient set ${recipientsId}`)
    const { cipher, cipherId: got } = await this.#encryptBlob(await this.#readLocal(plainId), plainId, recipientsId, recipients)
    if (got !== cipherId) throw new UnavailableError(`re-encrypting ${plainId} gave ${got}, not ${cipherId}`)
    return cipher
  }

  /** Frees local blobs whose count reached zero, unless an in-flight store pinned them. */
  async #freeLocal(ids: Iterable<string>): Promise<void> {
    const { chunks } = this.#tables!
    for (const id of ids) {
      await this.#locks.run(id, async () => {
        if (this.#index!.refcounts.has(id) || this.#locks.pinned(id)) return
        await this.#blobs!.delete(id)
        if (chunks.has(id)) await this.#index!.transaction((tx) => tx.delete(chunks, id))
      })
    }
  }

  async store(key: string, data: StoreData, options: SignalOptions = {}): Promise<StoreResult> {
    assertValidKey(key)
    throwIfAborted(options.signal)
    return this.#track(() => this.#locks.run(`key:${key}`, () => this.#store(key, data, options.signal)))
  }

  async #store(key: string, data: StoreData, signal: AbortSignal | undefined): Promise<StoreResult> {
    const index = this.#index!
    const tables = this.#tables!
    const keys = this.#keys!
    const peers = this.#connected()
    const quorum = this.#options.writeQuorum === undefined || this.#options.writeQuorum === 'all' ? peers.length : this.#options.writeQuorum
    const refId = refIdOf(keys, key)
    // Above any version a peer has seen, so that a key deleted before this node lost its index is taken again.
    const version = Math.max(index.refs.get(key)?.version ?? 0, index.tombstones.get(key)?.version ?? 0, tables.versionFloors.get(refId) ?? 0) + 1
    const { recipients, recipientsId } = this.#recipients()
    const pins: string[] = []
    const pin = (id: string): void => {
      this.#locks.pin(id)
      pins.push(id)
    }
    const local = new InFlight(this.#concurrency)
    const sends = new Map(peers.map((c) => [c.remoteNodeId, new InFlight(this.#concurrency)]))
    const failed = new Map<string, string>()
    const live = (nodeId: string): boolean => !failed.has(nodeId) && sends.get(nodeId)?.error === undefined
    const newChunks = new Map<string, ChunkRecord>()
    const chunks: ManifestChunk[] = []
    const whole = createHash('sha256')
    let size = 0
    let committed = false
    try {
      for await (const chunk of this.#chunker.chunks(toByteStream(data))) {
        throwIfAborted(signal)
        if (this.#shutdown.signal.aborted) throw new ClosedError()
        whole.update(chunk)
        size += chunk.length
        const plainId = sha256Hex(chunk)
        pin(plainId)
        const known = newChunks.get(plainId) ?? tables.chunks.get(plainId)
        let cipherId: string
        let produce: () => Promise<Uint8Array>
        if (known !== undefined && known.recipientsId === recipientsId) {
          cipherId = known.cipherId
          let made: Promise<Uint8Array> | undefined
          produce = () => (made ??= this.#encryptBlob(chunk, plainId, recipientsId, recipients).then((r) => r.cipher))
        } else {
          const { cipher, cipherId: id } = await this.#encryptBlob(chunk, plainId, recipientsId, recipients)
          cipherId = id
          produce = () => Promise.resolve(cipher)
          newChunks.set(plainId, { cipherId, recipientsId })
        }
        chunks.push({ plainId, cipherId, size: chunk.length })
        await local.add(() => this.#locks.run(plainId, async () => void (await this.#blobs!.has(plainId) ? undefined : await this.#blobs!.putExpected(plainId, chunk))))
        if (local.error !== undefined) throw local.error
        for (const conn of peers) {
          if (!live(conn.remoteNodeId)) continue
          await sends.get(conn.remoteNodeId)!.add(async () => void (await putBlob(conn, cipherId, produce, signal)))
        }
      }
      await local.drain()
      if (local.error !== undefined) throw local.error

      // The manifest: plaintext locally, encrypted for peers; then the local commit.
      const manifest: Manifest = { key, size, sha256: whole.digest('hex'), version, createdAt: Date.now(), recipients, chunks }
      const manifestBytes = encodeManifest(manifest)
      const manifestId = sha256Hex(manifestBytes)
      pin(manifestId)
      await this.#locks.run(manifestId, async () => void (await this.#blobs!.putExpected(manifestId, manifestBytes)))
      const { cipher: manifestCipher, cipherId: manifestCipherId } = await this.#encryptBlob(manifestBytes, manifestId, recipientsId, recipients)
      const blobIds = [...new Set([...chunks.map((c) => c.plainId), manifestId])]
      const meta: RefMeta = { refId, manifestCipherId, chunkCount: chunks.length, recipientsId }
      const record: RefRecord = { manifestId, size, sha256: manifest.sha256, version, updatedAt: manifest.createdAt, meta: { ...meta } }
      const previous = tables.refBlobs.get(key) ?? []
      const freed = await index.transaction((tx) => {
        tx.put(index.refs, key, record)
        tx.put(tables.refBlobs, key, blobIds)
        tx.delete(index.tombstones, key)
        if (tx.get(tables.recipientSets, recipientsId) === undefined) tx.put(tables.recipientSets, recipientsId, recipients)
        for (const [plainId, rec] of newChunks) tx.put(tables.chunks, plainId, rec)
        for (const id of blobIds) tx.add(index.refcounts, id, 1)
        return previous.filter((id) => tx.add(index.refcounts, id, -1) === 0)
      })
      committed = true
      await this.#freeLocal(freed)

      // Each peer: every chunk sent, then the manifest, then the ref; acknowledged only when all are durable there.
      const cipherIds = [...new Set(chunks.map((c) => c.cipherId))]
      const plainOf = new Map(chunks.map((c) => [c.cipherId, c.plainId]))
      const replicas: string[] = []
      await Promise.all(
        peers.map(async (conn) => {
          const nodeId = conn.remoteNodeId
          const sending = sends.get(nodeId)!
          try {
            await sending.drain()
            if (sending.error !== undefined) throw sending.error
            await putBlob(conn, manifestCipherId, () => manifestCipher, signal)
            await this.#putRefWithRetry(conn, { refId, version, manifestCipherId, size, cipherIds }, (cipherId) => {
              const plainId = plainOf.get(cipherId)
              if (plainId === undefined) return Promise.resolve(manifestCipher)
              return this.#cipherOf(plainId, cipherId, recipientsId)
            }, signal)
            replicas.push(nodeId)
          } catch (err) {
            failed.set(nodeId, message(err))
            this.#log.warn({ key, peer: nodeId, err: message(err) }, 'replication to peer failed')
          }
        }),
      )
      if (replicas.length > 0) {
        await index.transaction((tx) => {
          for (const nodeId of replicas) tx.put(index.peerState, `${refId}/${nodeId}`, { state: 'held', updatedAt: Date.now(), meta: { version } })
        })
      }
      // Peers that connected during the store, or failed it but are still connected, get it in the background.
      for (const conn of this.#connected()) {
        if (!replicas.includes(conn.remoteNodeId)) this.#enqueue(conn, 'late replication', () => this.#locks.run(`key:${key}`, () => this.#replicateTo(conn, key)))
      }
      if (replicas.length < quorum) {
        throw new QuorumError({ key, needed: quorum, replicas, failed: [...failed].map(([nodeId, error]) => ({ nodeId, error })) })
      }
      this.#log.info({ key, size, version, replicas: replicas.length }, 'stored')
      return { key, size, sha256: manifest.sha256, version, replicas }
    } finally {
      await local.drain()
      for (const s of sends.values()) await s.drain()
      for (const id of pins) this.#locks.unpin(id)
      if (!committed) await this.#abandon(pins, [...new Set(chunks.map((c) => c.cipherId))], peers)
    }
  }

  /** A store that failed before its local commit leaves nothing behind: its blobs no ref uses, here and on peers. */
  async #abandon(plainIds: string[], cipherIds: string[], peers: Connection[]): Promise<void> {
    await this.#freeLocal(plainIds).catch((err: unknown) => this.#log.warn({ err: message(err) }, 'freeing the blobs of a failed store failed'))
    if (cipherIds.length === 0) return
    // A peer whose connection dropped frees them itself (blobs received on a closed connection are swept).
    for (const conn of peers) if (conn.open) this.#enqueue(conn, 'releasing the blobs of a failed store', () => releaseBlobs(conn, cipherIds, this.#shutdown.signal))
  }

  /** Records versions peers hold for refs, so the next store of such a key goes above them. */
  async #raiseFloors(seen: Array<[refId: string, version: number]>): Promise<void> {
    const floors = this.#tables!.versionFloors
    const higher = seen.filter(([refId, version]) => version > (floors.get(refId) ?? 0))
    if (higher.length > 0) await this.#index!.transaction((tx) => {
      for (const [refId, version] of higher) if (version > (tx.get(floors, refId) ?? 0)) tx.put(floors, refId, version)
    })
  }

  /** `ref.put`, sending whatever blobs the holder reports missing (a few rounds at most). */
  async #putRefWithRetry(conn: Connection, ref: Parameters<typeof putRef>[1], cipherFor: (cipherId: string) => Promise<Uint8Array>, signal?: AbortSignal): Promise<void> {
    for (let round = 0; round < 4; round++) {
      const res = await putRef(conn, ref, signal)
      if (res.ok) return
      if (res.stale) {
        await this.#raiseFloors([[ref.refId, res.version]])
        throw new UnavailableError(`the peer holds a newer version (${res.version}) or a later delete`)
      }
      for (const cipherId of res.missing) await putBlob(conn, cipherId, () => cipherFor(cipherId), signal)
    }
    throw new UnavailableError('the peer kept reporting blobs missing')
  }

  read(key: string, options: ReadOptions = {}): Readable {
    assertValidKey(key)
    const { offset = 0, length } = options
    if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidOptionsError(`offset must be a non-negative integer, got ${offset}`)
    if (length !== undefined && (!Number.isSafeInteger(length) || length < 0)) throw new InvalidOptionsError(`length must be a non-negative integer, got ${length}`)
    if (this.#state !== 'open') throw new ClosedError()
    return Readable.from(this.#readChunks(key, offset, length, options.signal), { objectMode: false, highWaterMark: 1 })
  }

  async *#readChunks(key: string, offset: number, length: number | undefined, userSignal: AbortSignal | undefined): AsyncGenerator<Uint8Array> {
    const signal = userSignal === undefined ? this.#shutdown.signal : AbortSignal.any([userSignal, this.#shutdown.signal])
    let finish!: () => void
    const op = new Promise<void>((resolve) => (finish = resolve))
    this.#ops.add(op)
    try {
      const { manifest } = await this.#resolve(key, signal)
      const end = length === undefined ? manifest.size : Math.min(manifest.size, offset + length)
      const parts = offset >= end ? [] : chunksInRange(manifest.chunks, offset, end - offset)
      const queue: Array<Promise<Buffer>> = []
      let next = 0
      const fill = (): void => {
        while (queue.length < this.#concurrency && next < parts.length) {
          const p = this.#loadChunk(key, parts[next++]!.chunk, signal)
          p.catch(() => {})
          queue.push(p)
        }
      }
      fill()
      for (const part of parts) {
        const bytes = await queue.shift()!
        fill()
        if (signal.aborted) throw this.#shutdown.signal.aborted ? new ClosedError() : new AbortedError(undefined, { cause: userSignal?.reason })
        yield part.start === 0 && part.end === bytes.length ? bytes : bytes.subarray(part.start, part.end)
      }
    } finally {
      this.#ops.delete(op)
      finish()
    }
  }

  /** A chunk's verified plaintext: local, else from a peer (verified twice), healed locally. */
  async #loadChunk(key: string, chunk: ManifestChunk, signal: AbortSignal): Promise<Buffer> {
    let damaged = false
    try {
      return await this.#readLocal(chunk.plainId, signal)
    } catch (err) {
      if (!LOCAL_MISS.has(codeOf(err) ?? '')) throw err
      damaged = codeOf(err) === 'ERR_INTEGRITY'
    }
    const { plain, from } = await this.#fetch(chunk.cipherId, undefined, (cipher) => this.#decryptBlob(cipher, chunk.plainId), signal)
    await this.#heal(chunk.plainId, plain, damaged)
    this.emit('healed', { key, plainId: chunk.plainId, from })
    this.#log.info({ key, plainId: chunk.plainId, from }, 'healed chunk from peer')
    return plain
  }

  async #heal(plainId: string, plain: Uint8Array, damaged: boolean): Promise<void> {
    await this.#locks.run(plainId, async () => {
      if (damaged) await this.#blobs!.delete(plainId)
      if (!(await this.#blobs!.has(plainId))) await this.#blobs!.putExpected(plainId, plain)
    })
  }

  /** Fetches a blob from peers in turn, each answer checked against `cipherId` and then by `open`. */
  async #fetch(cipherId: string, refId: string | undefined, open: (cipher: Uint8Array) => Promise<Buffer>, signal: AbortSignal): Promise<{ plain: Buffer; from: string }> {
    const errors: string[] = []
    const bad: Connection[] = []
    for (const conn of this.#connected(refId)) {
      throwIfAborted(signal)
      try {
        const cipher = await getBlob(conn, cipherId, AbortSignal.any([signal, AbortSignal.timeout(this.#requestTimeout)]))
        if (sha256Hex(cipher) !== cipherId) throw new UnavailableError('the bytes it sent do not hash to the cipherId')
        const plain = await open(cipher)
        for (const b of bad) void putBlob(b, cipherId, () => cipher).catch(() => {})
        return { plain, from: conn.remoteNodeId }
      } catch (err) {
        if (signal.aborted) throw this.#shutdown.signal.aborted ? new ClosedError() : new AbortedError(undefined, { cause: err })
        errors.push(`${conn.remoteNodeId.slice(0, 12)}: ${message(err)}`)
        bad.push(conn)
      }
    }
    throw new UnavailableError(`no peer could supply ${cipherId}` + (errors.length === 0 ? ' (no peer is connected)' : ` (${errors.join('; ')})`))
  }

  /** The key's ref and manifest: local, else recovered from peers. */
  async #resolve(key: string, signal: AbortSignal): Promise<{ record: RefRecord; manifest: Manifest }> {
    const index = this.#index!
    let record = index.refs.get(key)
    if (record === undefined) {
      if (index.tombstones.has(key)) throw new NotFoundError(`"${key}" was deleted`)
      record = await this.#recoverRef(key, signal)
    }
    const meta = metaOf(record)
    let manifest: Manifest
    try {
      manifest = decodeManifest(await this.#readLocal(record.manifestId, signal))
    } catch (err) {
      if (!LOCAL_MISS.has(codeOf(err) ?? '')) throw err
      const { plain } = await this.#fetch(meta.manifestCipherId, meta.refId, (cipher) => this.#decryptBlob(cipher, record.manifestId), signal)
      manifest = decodeManifest(plain)
      await this.#heal(record.manifestId, plain, codeOf(err) === 'ERR_INTEGRITY')
    }
    if (manifest.key !== key || manifest.version !== record.version) throw new UnavailableError(`the manifest of "${key}" does not match its ref`)
    return { record, manifest }
  }

  /** Asks the peers for a ref this node lost; installs the newest live version unless a delete is newer. */
  async #recoverRef(key: string, signal: AbortSignal): Promise<RefRecord> {
    const refId = refIdOf(this.#keys!, key)
    const answers = await Promise.all(
      this.#connected().map(async (conn) => {
        try {
          return { conn, ref: await getRef(conn, refId, AbortSignal.any([signal, AbortSignal.timeout(this.#requestTimeout)])) }
        } catch {
          return { conn, ref: undefined }
        }
      }),
    )
    let best: { conn: Connection; ref: RemoteRef } | undefined
    let deletedAt = -1
    for (const a of answers) {
      if (a.ref === undefined) continue
      if (a.ref.deleted) deletedAt = Math.max(deletedAt, a.ref.version)
      else if (best === undefined || a.ref.version > best.ref.version) best = { conn: a.conn, ref: a.ref }
    }
    if (best === undefined || deletedAt >= best.ref.version) throw new NotFoundError(`no object is stored under "${key}"`)
    const installed = await this.#installRecovered(refId, best.ref, signal)
    if (installed === undefined || installed.key !== key) throw new NotFoundError(`no object is stored under "${key}"`)
    return installed.record
  }

  /** Fetches, checks and installs a ref a peer holds for us; `undefined` if a newer local state wins. */
  async #installRecovered(refId: string, remote: RemoteRef, signal: AbortSignal): Promise<{ key: string; record: RefRecord } | undefined> {
    const index = this.#index!
    const tables = this.#tables!
    let manifestId = ''
    const { plain } = await this.#fetch(remote.manifestCipherId!, refId, async (cipher) => {
      const bytes = Buffer.from(await decryptBytes(cipher, [this.#keys!.identity]))
      manifestId = sha256Hex(bytes)
      return bytes
    }, signal)
    const manifest = decodeManifest(plain)
    if (refIdOf(this.#keys!, manifest.key) !== refId || manifest.version !== remote.version) throw new UnavailableError(`a peer's manifest for ref ${refId} does not match it`)
    const key = manifest.key
    return this.#locks.run(`key:${key}`, async () => {
      const current = index.refs.get(key)
      const tomb = index.tombstones.get(key)
      if ((current !== undefined && current.version >= manifest.version) || (tomb !== undefined && tomb.version >= manifest.version)) return undefined
      await this.#heal(manifestId, plain, false)
      const recipientsId = sha256Hex(Buffer.from(manifest.recipients.join('\n')))
      const meta: RefMeta = { refId, manifestCipherId: remote.manifestCipherId!, chunkCount: manifest.chunks.length, recipientsId }
      const record: RefRecord = { manifestId, size: manifest.size, sha256: manifest.sha256, version: manifest.version, updatedAt: manifest.createdAt, meta: { ...meta } }
      const blobIds = [...new Set([...manifest.chunks.map((c) => c.plainId), manifestId])]
      const previous = tables.refBlobs.get(key) ?? []
      const freed = await index.transaction((tx) => {
        tx.put(index.refs, key, record)
        tx.put(tables.refBlobs, key, blobIds)
        tx.delete(index.tombstones, key)
        if (tx.get(tables.recipientSets, recipientsId) === undefined) tx.put(tables.recipientSets, recipientsId, manifest.recipients)
        for (const c of manifest.chunks) if (tx.get(tables.chunks, c.plainId) === undefined) tx.put(tables.chunks, c.plainId, { cipherId: c.cipherId, recipientsId })
        for (const id of blobIds) tx.add(index.refcounts, id, 1)
        return previous.filter((id) => tx.add(index.refcounts, id, -1) === 0)
      })
      await this.#freeLocal(freed)
      this.#log.info({ key, version: manifest.version }, 'recovered ref from peer')
      return { key, record }
    })
  }

  async has(key: string): Promise<boolean> {
    assertValidKey(key)
    if (this.#index === undefined) throw new ClosedError('the server is not started')
    return Promise.resolve(this.#index.refs.has(key))
  }

  async stat(key: string): Promise<ObjectStat> {
    assertValidKey(key)
    const index = this.#index
    if (index === undefined) throw new ClosedError('the server is not started')
    const record = index.refs.get(key)
    if (record === undefined) throw new NotFoundError(`no object is stored under "${key}"`)
    const meta = metaOf(record)
    const replicas: string[] = []
    for (const [k, state] of index.peerState.entries({ prefix: `${meta.refId}/` })) {
      if (state.state === 'held' && state.meta?.version === record.version) replicas.push(k.slice(meta.refId.length + 1))
    }
    return Promise.resolve({ key, size: record.size, sha256: record.sha256, chunks: meta.chunkCount, version: record.version, updatedAt: record.updatedAt, replicas })
  }

  async list(options: ListOptions = {}): Promise<ListEntry[]> {
    const index = this.#index
    if (index === undefined) throw new ClosedError('the server is not started')
    const limit = options.limit ?? 1000
    if (!Number.isSafeInteger(limit) || limit < 1) throw new InvalidOptionsError(`limit must be a positive integer, got ${limit}`)
    const out: ListEntry[] = []
    const range = { limit, ...(options.prefix === undefined ? {} : { prefix: options.prefix }), ...(options.after === undefined ? {} : { after: options.after }) }
    for (const [key, r] of index.refs.entries(range)) out.push({ key, size: r.size, sha256: r.sha256, version: r.version, updatedAt: r.updatedAt })
    return Promise.resolve(out)
  }

  async delete(key: string, options: SignalOptions = {}): Promise<DeleteResult> {
    assertValidKey(key)
    throwIfAborted(options.signal)
    return this.#track(() => this.#locks.run(`key:${key}`, () => this.#delete(key, options.signal)))
  }

  async #delete(key: string, signal: AbortSignal | undefined): Promise<DeleteResult> {
    const index = this.#index!
    const tables = this.#tables!
    let record = index.refs.get(key)
    if (record === undefined) {
      if (index.tombstones.has(key)) throw new NotFoundError(`"${key}" was already deleted`)
      record = await this.#recoverRef(key, signal ?? this.#shutdown.signal)
    }
    const { version } = record
    const refId = refIdOf(this.#keys!, key)
    const blobIds = tables.refBlobs.get(key) ?? []
    const freed = await index.transaction((tx) => {
      tx.delete(index.refs, key)
      tx.delete(tables.refBlobs, key)
      tx.put(index.tombstones, key, { version, deletedAt: Date.now() })
      for (const [k] of index.peerState.entries({ prefix: `${refId}/` })) tx.delete(index.peerState, k)
      return blobIds.filter((id) => tx.add(index.refcounts, id, -1) === 0)
    })
    await this.#freeLocal(freed)
    const acknowledged: string[] = []
    await Promise.all(
      this.#connected().map(async (conn) => {
        try {
          await deleteRef(conn, refId, version, signal)
          acknowledged.push(conn.remoteNodeId)
        } catch (err) {
          this.#log.warn({ key, peer: conn.remoteNodeId, err: message(err) }, 'delete on peer failed; it gets the tombstone when it reconnects')
        }
      }),
    )
    const pending = this.peers()
      .map((p) => p.nodeId)
      .filter((id) => !acknowledged.includes(id))
    this.#log.info({ key, version, acknowledged: acknowledged.length, pending: pending.length }, 'deleted')
    return { acknowledged, pending }
  }

  // ---- catch-up -----------------------------------------------------------

  #scheduleSync(conn: Connection): void {
    this.#enqueue(conn, 'catch-up', () => this.#sync(conn))
  }

  /** Runs background work for one peer after the work queued before it (catch-up, late replication). */
  #enqueue(conn: Connection, what: string, fn: () => Promise<void>): void {
    const nodeId = conn.remoteNodeId
    const previous = this.#peerQueues.get(nodeId) ?? Promise.resolve()
    const run = previous
      .then(() => (conn.open && this.#state === 'open' ? fn() : undefined))
      .catch((err: unknown) => {
        if (!this.#shutdown.signal.aborted) this.#log.warn({ peer: nodeId, err: message(err) }, `${what} failed`)
      })
      .finally(() => {
        if (this.#peerQueues.get(nodeId) === run) this.#peerQueues.delete(nodeId)
      })
    this.#peerQueues.set(nodeId, run)
  }

  /** Brings one peer up to date with this node's refs and tombstones, and recovers refs this node lost. */
  async #sync(conn: Connection): Promise<void> {
    if (!conn.open || this.#state !== 'open') return
    const signal = this.#shutdown.signal
    const index = this.#index!
    const keys = this.#keys!
    const remote = new Map<string, RemoteRef>()
    for await (const ref of listRefs(conn, signal)) remote.set(ref.refId, ref)
    const known = new Set<string>()
    for (const [key, record] of index.refs.entries()) {
      throwIfAborted(signal)
      const meta = metaOf(record)
      known.add(meta.refId)
      const r = remote.get(meta.refId)
      if (r === undefined || r.version < record.version || r.damaged === true) {
        await this.#locks.run(`key:${key}`, () => this.#replicateTo(conn, key))
      } else if (r.version > record.version && !r.deleted) {
        await this.#installRecovered(meta.refId, r, signal).catch((err: unknown) => this.#log.warn({ key, err: message(err) }, 'recovering a newer version failed'))
      }
    }
    for (const [key, tomb] of index.tombstones.entries()) {
      throwIfAborted(signal)
      const refId = refIdOf(keys, key)
      known.add(refId)
      const r = remote.get(refId)
      if (r !== undefined && !r.deleted && r.version <= tomb.version) await deleteRef(conn, refId, tomb.version, signal)
    }
    for (const r of remote.values()) {
      if (known.has(r.refId) || r.deleted) continue
      await this.#installRecovered(r.refId, r, signal).catch((err: unknown) => this.#log.warn({ refId: r.refId, err: message(err) }, 'recovering a ref failed'))
    }
    // Refs this node does not know (their tombstones went with a lost index): new versions must go above them.
    await this.#raiseFloors([...remote.values()].filter((r) => !known.has(r.refId)).map((r) => [r.refId, r.version]))
    this.#log.info({ peer: conn.remoteNodeId, refs: remote.size }, 'caught up')
    this.emit('synced', { nodeId: conn.remoteNodeId })
  }

  /** Sends one key's current version to a peer: the blobs it lacks, then the ref. */
  async #replicateTo(conn: Connection, key: string): Promise<void> {
    const index = this.#index!
    const record = index.refs.get(key)
    if (record === undefined) return
    const signal = this.#shutdown.signal
    const meta = metaOf(record)
    const { manifest } = await this.#resolve(key, signal)
    const plainOf = new Map(manifest.chunks.map((c) => [c.cipherId, c.plainId]))
    const cipherIds = [...plainOf.keys()]
    const cipherFor = async (cipherId: string): Promise<Uint8Array> => {
      const plainId = plainOf.get(cipherId) ?? record.manifestId
      if (plainId === record.manifestId && cipherId !== meta.manifestCipherId) throw new UnavailableError(`unknown blob ${cipherId}`)
      // A chunk lost here too is fetched from another peer first (and healed).
      if (plainId !== record.manifestId) await this.#loadChunk(key, { plainId, cipherId, size: 0 }, signal)
      return this.#cipherOf(plainId, cipherId, meta.recipientsId)
    }
    const missing = await missingBlobs(conn, [...cipherIds, meta.manifestCipherId], signal)
    for (const cipherId of missing) await putBlob(conn, cipherId, () => cipherFor(cipherId), signal)
    await this.#putRefWithRetry(conn, { refId: meta.refId, version: record.version, manifestCipherId: meta.manifestCipherId, size: record.size, cipherIds }, cipherFor, signal)
    await index.transaction((tx) => tx.put(index.peerState, `${meta.refId}/${conn.remoteNodeId}`, { state: 'held', updatedAt: Date.now(), meta: { version: record.version } }))
  }

  // ---- maintenance --------------------------------------------------------

  async #replicaStore(owner: string): Promise<BlobStore> {
    if (!/^[0-9a-f]{64}$/.test(owner)) throw new InvalidOptionsError('owner ids are 64 lowercase hex characters')
    let store = this.#replicaStores.get(owner)
    if (store === undefined) {
      store = openBlobStore({ root: join(this.#options.root, 'replicas', owner) })
      this.#replicaStores.set(owner, store)
    }
    return store
  }

  /** Removes blobs no ref counts (left by a crash between writing blobs and committing their ref). */
  async #sweepOrphans(): Promise<void> {
    const index = this.#index!
    let swept = 0
    for await (const id of this.#blobs!.list()) {
      if (!index.refcounts.has(id)) {
        await this.#blobs!.delete(id)
        swept++
      }
    }
    const counts = this.#holder!.tables.counts
    for (const owner of await readdir(join(this.#options.root, 'replicas'))) {
      if (!/^[0-9a-f]{64}$/.test(owner)) continue
      const store = await this.#replicaStore(owner)
      for await (const id of store.list()) {
        if (!counts.has(`${owner}/${id}`)) {
          await store.delete(id)
          swept++
        }
      }
    }
    if (swept > 0) this.#log.info({ swept }, 'removed unreferenced blobs left by an interrupted write')
  }
}

function abortPromise(signal: AbortSignal | undefined): Promise<never> {
  return new Promise((_, reject) => {
    if (signal === undefined) return
    if (signal.aborted) reject(new AbortedError(undefined, { cause: signal.reason }))
    signal.addEventListener('abort', () => reject(new AbortedError(undefined, { cause: signal.reason })), { once: true })
  })
}
