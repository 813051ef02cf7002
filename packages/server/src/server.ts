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
import { deleteRef, getBlob, getRef, listRefs, MAX_REF_CHUNKS, missingBlobs, putBlob, putRef, releaseBlobs, type RefPut, type RemoteRef } from './client.js'
import { AbortedError, ClosedError, InvalidOptionsError, NotFoundError, QuorumError, UnavailableError, throwIfAborted } from './errors.js'
import { isHex64 } from './wire.js'
import { holderTables, serveRequest, sweepReceived, type HolderContext, type HolderTables } from './holder.js'
import { assertValidKey } from './key.js'
import { KeyedLocks } from './locks.js'
import { silentLogger, type Logger } from './logger.js'
import { chunksInRange, decodeManifest, encodeManifest, MAX_MANIFEST_BYTES, sha256Hex, type Manifest, type ManifestChunk } from './manifest.js'
import { isOwnTombstone, loadClusterSecret, loadOwnerKeys, refIdOf, seedOf, signTombstone, type OwnerKeys, type Tombstone } from './secrets.js'
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
  /** Timeout in ms for one request to a peer (a chunk, a ref, a page of refs; default 30 s). */
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

/** A bootstrap address could not be dialled; the node dials it again with backoff. */
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
  /** Dialling a bootstrap address failed (each failed attempt). */
  'dial:error': [DialErrorEvent]
  'peer:connect': [PeerInfo]
  'peer:disconnect': [PeerInfo]
  healed: [HealedEvent]
  /** Catch-up with a peer finished (replicas and tombstones sent, lost refs recovered). */
  synced: [{ nodeId: string }]
  /** A connected peer missed background work; catch-up with it runs again later. */
  'peer:behind': [BehindEvent]
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
  /**
   * Resolves once background work with every connected peer (catch-up, late replication, and the retries
   * of a catch-up that failed, see `peer:behind`) has finished. For a peer that keeps failing it waits for
   * its first eight retries (about a minute and a half); later ones go on in the background.
   */
  waitForSync(options?: SignalOptions): Promise<void>
  store(key: string, data: StoreData, options?: SignalOptions): Promise<StoreResult>
  read(key: string, options?: ReadOptions): Readable
  has(key: string): Promise<boolean>
  stat(key: string): Promise<ObjectStat>
  list(options?: ListOptions): Promise<ListEntry[]>
  delete(key: string, options?: SignalOptions): Promise<DeleteResult>
  /** Reads every local object through the verified read path, healing lost or damaged chunks from peers. */
  scrub(options?: SignalOptions): Promise<ScrubResult>
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
  /** refId → the newest delete a peer reported: a stale live copy elsewhere is never installed over it. */
  remoteTombstones: IndexTable<Omit<Tombstone, 'refId'>>
}

const LOCAL_MISS = new Set(['ERR_NOT_FOUND', 'ERR_INTEGRITY'])
/**
 * Whether a failure of background work toward a peer may pass by itself, so that catch-up is worth
 * running again: the peer reset the stream (its disk was full, an I/O error), or a request timed out
 * (the stream is reset locally, or the request could not even start in time). Not: bytes nowhere to be
 * had, a newer version there, a peer breaking the protocol, a closed connection (it catches up when it
 * reconnects).
 */
function mayPass(err: unknown): boolean {
  const code = codeOf(err)
  if (code === 'ERR_STREAM_RESET' || code === 'ERR_TOO_MANY_STREAMS') return true
  if (code !== 'ERR_ABORTED') return false
  for (let cause = (err as { cause?: unknown }).cause, depth = 0; cause instanceof Error && depth < 4; cause = cause.cause, depth++) {
    if (cause.name === 'TimeoutError') return true
  }
  return false
}
/**
 * First and longest wait before catch-up with a peer that fell behind runs again; `waitForSync` waits for
 * the first RETRY_AWAITED tries in a row (about a minute and a half), the later ones go on in the background.
 */
const RETRY_FIRST_MS = 500
const RETRY_MAX_MS = 30_000
const RETRY_AWAITED = 8
/** Requests from one peer served at once. */
const MAX_REQUESTS_PER_PEER = 16
const codeOf = (err: unknown): string | undefined => (err as { code?: string } | undefined)?.code
const message = (err: unknown): string => (err instanceof Error ? err.message : String(err))
/** A Buffer over the same memory (no copy): for bytes this code alone holds. */
const asBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)

/** The pieces as one Buffer: a view when they lie back to back in one memory (a blob the store read whole), else a copy. */
function joinPieces(pieces: Uint8Array[]): Buffer {
  const first = pieces[0]
  if (first === undefined) return Buffer.alloc(0)
  let end = first.byteOffset + first.byteLength
  for (const piece of pieces.slice(1)) {
    if (piece.buffer !== first.buffer || piece.byteOffset !== end) return Buffer.concat(pieces)
    end += piece.byteLength
  }
  return Buffer.from(first.buffer, first.byteOffset, end - first.byteOffset)
}

/** A peer's copy of one of this node's manifests, decrypted and checked. */
interface RemoteManifest {
  manifest: Manifest
  manifestId: string
  plain: Buffer
}

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
  /** Peers that fell behind while connected: when their next catch-up is due. */
  readonly #retries = new Map<string, { conn: Connection; timer: NodeJS.Timeout; due: Promise<void>; fire: () => void; awaited: boolean }>()
  /** Catch-ups of a peer that failed in a row, for the backoff. */
  readonly #retryAttempts = new Map<string, number>()
  readonly #replicaStores = new Map<string, Promise<BlobStore>>()
  readonly #ops = new Set<Promise<unknown>>()
  readonly #reads = new Set<Readable>()
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
    this.#requestTimeout = options.requestTimeout ?? 30_000
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
    this.#tables = { refBlobs: index.table('ref_blobs'), chunks: index.table('chunks'), recipientSets: index.table('recipient_sets'), peers: index.table('peers'), versionFloors: index.table('version_floors'), remoteTombstones: index.table('remote_tombstones') }
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
    return tcpTransport({
      identity,
      clusterSecret,
      ...(this.#options.allowList === undefined ? {} : { allowList: this.#options.allowList }),
      // Refused or failed inbound connections show up nowhere else.
      onInboundError: (err, remoteAddress) => this.#log.warn({ remoteAddress, code: err.code, err: err.message }, 'inbound connection refused'),
    })
  }

  async close(): Promise<void> {
    if (this.#state === 'closed' || this.#state === 'closing') return
    this.#state = 'closing'
    this.#shutdown.abort(new ClosedError())
    // A read nobody consumes any more would hold close() forever: reads end with ERR_CLOSED.
    for (const readable of this.#reads) readable.destroy(new ClosedError())
    await Promise.allSettled([...this.#ops])
    for (const nodeId of [...this.#retries.keys()]) this.#dropRetry(nodeId)
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
      const pending = [...this.#peerQueues.values(), ...[...this.#retries.values()].filter((r) => r.awaited).map((r) => r.due)]
      if (pending.length === 0) return
      await raceAbort(Promise.allSettled(pending), options.signal)
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
        if (conn.remoteNodeId === this.nodeId) {
          const err = new InvalidOptionsError(`bootstrap address ${address} is this node itself; not dialling it again`)
          conn.abort(err)
          this.#log.warn({ address }, err.message)
          this.emit('dial:error', { address, code: err.code, message: err.message })
          return
        }
        this.#dialed.set(conn.remoteNodeId, address)
        await this.#rememberPeer(conn.remoteNodeId, address)
        this.#adopt(conn)
        // Whichever connection to that peer survives, dial again only once it is gone.
        await this.#until(() => this.#conns.get(conn.remoteNodeId) === undefined, ['peer:disconnect'], signal)
      } catch (err) {
        if (signal.aborted) return
        this.#log.debug({ address, err: message(err) }, 'dial failed; retrying')
        const code = codeOf(err)
        this.emit('dial:error', { address, ...(code === undefined ? {} : { code }), message: message(err) })
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
    const served = this.#serveIncoming(conn, received)
    void conn.closed.then(async (reason) => {
      // A retry due on this connection is moot: the next one catches up from scratch.
      this.#dropRetry(nodeId, conn)
      if (this.#conns.get(nodeId) === conn) {
        this.#conns.delete(nodeId)
        this.#log.info({ peer: nodeId, reason: reason?.message }, 'peer disconnected')
        this.emit('peer:disconnect', this.#peerInfo(nodeId, false))
      }
      // Only once every request of this connection has ended: a blob whose write finishes after the close is swept too.
      await served
      if (this.#holder !== undefined && this.#state === 'open') await sweepReceived(this.#holder, nodeId, received)
    }).catch((err: unknown) => this.#log.warn({ peer: nodeId, err: message(err) }, 'cleaning up after a closed connection failed'))
    this.#log.info({ peer: nodeId, address: conn.remoteAddress, direction: conn.direction }, 'peer connected')
    this.emit('peer:connect', this.#peerInfo(nodeId, true))
    this.#retryAttempts.delete(nodeId)
    this.#scheduleSync(conn)
  }

  #peerInfo(nodeId: string, connected: boolean): PeerInfo {
    const address = this.#dialed.get(nodeId) ?? this.#tables?.peers.get(nodeId)?.address
    return { nodeId, ...(address === undefined ? {} : { address }), connected }
  }

  async #serveIncoming(conn: Connection, received: Set<string>): Promise<void> {
    // A bounded number of requests per peer at once; the rest wait in the muxer, under its flow control.
    const serving = new InFlight(MAX_REQUESTS_PER_PEER)
    // A peer that breaks the protocol loses its connection, as for a malformed frame.
    const onMalformed = (err: Error): void => conn.abort(err)
    try {
      for await (const stream of conn.incoming) await serving.add(() => serveRequest(this.#holder!, conn.remoteNodeId, stream, received, onMalformed))
    } catch (err) {
      this.#log.debug({ peer: conn.remoteNodeId, err: message(err) }, 'incoming streams ended')
    } finally {
      await serving.drain()
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

  /** The signal of one request to a peer: a timeout, the caller's signal, and for background work the shutdown. */
  #requestSignal(caller?: AbortSignal, background = false): AbortSignal {
    const signals = [AbortSignal.timeout(this.#requestTimeout)]
    if (caller !== undefined) signals.push(caller)
    if (background) signals.push(this.#shutdown.signal)
    return AbortSignal.any(signals)
  }

  #recipients(): { recipients: string[]; recipientsId: string } {
    const recipients = [this.#keys!.recipient, ...(this.#options.recoveryRecipients ?? [])]
    return { recipients, recipientsId: sha256Hex(Buffer.from(recipients.join('\n'))) }
  }

  async #encryptBlob(plain: Uint8Array, plainId: string, recipientsId: string, recipients: string[]): Promise<{ cipher: Buffer; cipherId: string }> {
    const cipher = asBuffer(await encryptBytes(plain, recipients, { seed: seedOf(this.#keys!, plainId, recipientsId) }))
    return { cipher, cipherId: sha256Hex(cipher) }
  }

  async #decryptBlob(cipher: Uint8Array, plainId: string): Promise<Buffer> {
    const plain = asBuffer(await decryptBytes(cipher, [this.#keys!.identity]))
    if (sha256Hex(plain) !== plainId) throw new UnavailableError(`decrypted bytes do not hash to ${plainId}`)
    return plain
  }

  /** Reads a local blob whole (chunks and manifests are bounded), verified by the store. */
  async #readLocal(id: string, signal?: AbortSignal): Promise<Buffer> {
    const pieces: Uint8Array[] = []
    for await (const piece of this.#blobs!.get(id, signal === undefined ? {} : { signal })) pieces.push(piece)
    return joinPieces(pieces)
  }

  /** The ciphertext of a local plaintext blob, re-created deterministically and checked against `cipherId`. */
  async #cipherOf(plainId: string, cipherId: string, recipientsId: string): Promise<Buffer> {
    const recipients = this.#tables!.recipientSets.get(recipientsId)
    if (recipients === undefined) throw new UnavailableError(`unknown recipient set ${recipientsId}`)
    const { cipher, cipherId: got } = await this.#encryptBlob(await this.#readLocal(plainId), plainId, recipientsId, recipients)
    if (got !== cipherId) throw new UnavailableError(`re-encrypting ${plainId} gave ${got}, not ${cipherId}`)
    return cipher
  }

  /**
   * Frees local blobs whose count reached zero, unless an in-flight store pinned them: a few at
   * a time (each delete waits on a directory fsync), then their chunk records in one commit.
   */
  async #freeLocal(ids: Iterable<string>): Promise<void> {
    const index = this.#index!
    const { chunks } = this.#tables!
    const records: string[] = []
    const deleting = new InFlight(this.#concurrency)
    for (const id of ids) {
      await deleting.add(() =>
        this.#locks.run(id, async () => {
          if (index.refcounts.has(id) || this.#locks.pinned(id)) return
          await this.#blobs!.delete(id)
          if (chunks.has(id)) records.push(id)
        }),
      )
    }
    await deleting.drain()
    if (records.length > 0) {
      // A chunk counted or pinned again since its blob went keeps its record.
      await index.transaction((tx) => {
        for (const id of records) if (tx.get(index.refcounts, id) === undefined && !this.#locks.pinned(id)) tx.delete(chunks, id)
      })
    }
    if (deleting.error !== undefined) throw deleting.error
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
    // Each cipher blob goes to a peer once per store, however often its chunk repeats.
    const queued = new Map(peers.map((c) => [c.remoteNodeId, new Set<string>()]))
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
        if (chunks.length >= MAX_REF_CHUNKS) throw new InvalidOptionsError(`"${key}" needs more than ${MAX_REF_CHUNKS} chunks: store it with a larger chunkSize`)
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
        await local.add(() => this.#ensureLocal(plainId, chunk))
        if (local.error !== undefined) throw local.error
        for (const conn of peers) {
          const sent = queued.get(conn.remoteNodeId)!
          if (!live(conn.remoteNodeId) || sent.has(cipherId)) continue
          sent.add(cipherId)
          await sends.get(conn.remoteNodeId)!.add(async () => void (await putBlob(conn, cipherId, produce, this.#requestSignal(signal))))
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
            await putBlob(conn, manifestCipherId, () => manifestCipher, this.#requestSignal(signal))
            const ref = { refId, version, manifestCipherId, size, writtenAt: manifest.createdAt, cipherIds }
            await this.#putRefWithRetry(conn, ref, (cipherId) => {
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
      // One that failed it may keep blobs of this version that no ref of its uses (the key may have changed by
      // then, or the late replication failed too): it is told to drop them afterwards.
      for (const conn of this.#connected()) {
        const nodeId = conn.remoteNodeId
        if (replicas.includes(nodeId)) continue
        this.#enqueue(conn, 'late replication', () => this.#locks.run(`key:${key}`, () => this.#replicateTo(conn, key)))
        if (failed.has(nodeId)) this.#enqueue(conn, 'releasing the blobs of a failed replication', () => releaseBlobs(conn, [...cipherIds, manifestCipherId], this.#requestSignal(undefined, true)))
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
    for (const conn of peers) if (conn.open) this.#enqueue(conn, 'releasing the blobs of a failed store', () => releaseBlobs(conn, cipherIds, this.#requestSignal(undefined, true)))
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
  async #putRefWithRetry(conn: Connection, ref: RefPut, cipherFor: (cipherId: string) => Promise<Uint8Array>, signal?: AbortSignal, background = false): Promise<void> {
    for (let round = 0; round < 4; round++) {
      const res = await putRef(conn, ref, this.#requestSignal(signal, background))
      if (res.ok) return
      if (res.stale) {
        const version = await this.#verifiedVersion(conn, ref.refId, signal ?? this.#shutdown.signal)
        if (version !== undefined) await this.#raiseFloors([[ref.refId, version]])
        throw new UnavailableError(`the peer holds a newer version (${res.version}) or a later delete`)
      }
      for (const cipherId of res.missing) await putBlob(conn, cipherId, () => cipherFor(cipherId), this.#requestSignal(signal, background))
    }
    throw new UnavailableError('the peer kept reporting blobs missing')
  }

  read(key: string, options: ReadOptions = {}): Readable {
    assertValidKey(key)
    const { offset = 0, length } = options
    if (!Number.isSafeInteger(offset) || offset < 0) throw new InvalidOptionsError(`offset must be a non-negative integer, got ${offset}`)
    if (length !== undefined && (!Number.isSafeInteger(length) || length < 0)) throw new InvalidOptionsError(`length must be a non-negative integer, got ${length}`)
    if (this.#state !== 'open') throw new ClosedError()
    const readable = Readable.from(this.#readChunks(key, offset, length, options.signal), { objectMode: false, highWaterMark: 1 })
    this.#reads.add(readable)
    readable.once('close', () => this.#reads.delete(readable))
    return readable
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
    const { plain, from } = await this.#fetch(chunk.cipherId, maxCipherBytes(chunk.size), undefined, (cipher) => this.#decryptBlob(cipher, chunk.plainId), signal)
    await this.#ensureLocal(chunk.plainId, plain, damaged)
    this.emit('healed', { key, plainId: chunk.plainId, from })
    this.#log.info({ key, plainId: chunk.plainId, from }, 'healed chunk from peer')
    return plain
  }

  /**
   * Makes blob `id` hold `bytes`: an intact copy already there is kept, a missing or damaged one
   * is (re)written (`damaged`: known to be bad, so not worth checking).
   */
  async #ensureLocal(id: string, bytes: Uint8Array, damaged = false): Promise<void> {
    await this.#locks.run(id, async () => {
      if (!damaged && (await this.#blobs!.has(id))) {
        try {
          for await (const _ of this.#blobs!.get(id));
          return
        } catch (err) {
          if (!LOCAL_MISS.has(codeOf(err) ?? '')) throw err
        }
      }
      await this.#blobs!.putExpected(id, bytes)
    })
  }

  /**
   * Fetches a blob from peers in turn, each answer at most `maxSize` bytes and checked against
   * `cipherId`, then by `open`. Peers that failed are sent the good copy in the background.
   */
  async #fetch(cipherId: string, maxSize: number, refId: string | undefined, open: (cipher: Uint8Array) => Promise<Buffer>, signal: AbortSignal): Promise<{ plain: Buffer; from: string }> {
    const errors: string[] = []
    const bad: Connection[] = []
    for (const conn of this.#connected(refId)) {
      throwIfAborted(signal)
      try {
        const cipher = await getBlob(conn, cipherId, maxSize, this.#requestSignal(signal))
        if (sha256Hex(cipher) !== cipherId) throw new UnavailableError('the bytes it sent do not hash to the cipherId')
        const plain = await open(cipher)
        for (const b of bad) this.#enqueue(b, 'repairing a replica', async () => void (await putBlob(b, cipherId, () => cipher, this.#requestSignal(undefined, true))))
        return { plain, from: conn.remoteNodeId }
      } catch (err) {
        if (signal.aborted) throw this.#shutdown.signal.aborted ? new ClosedError() : new AbortedError(undefined, { cause: err })
        errors.push(`${conn.remoteNodeId.slice(0, 12)}: ${message(err)}`)
        bad.push(conn)
      }
    }
    throw new UnavailableError(`no peer could supply ${cipherId}` + (errors.length === 0 ? ' (no peer is connected)' : ` (${errors.join('; ')})`))
  }

  /** The key's ref and manifest: local, else recovered from peers. `holdsKeyLock`: the caller holds the key's lock. */
  async #resolve(key: string, signal: AbortSignal, holdsKeyLock = false): Promise<{ record: RefRecord; manifest: Manifest }> {
    const index = this.#index!
    let record = index.refs.get(key)
    if (record === undefined) {
      if (index.tombstones.has(key)) throw new NotFoundError(`"${key}" was deleted`)
      record = await this.#recoverRef(key, signal, holdsKeyLock)
    }
    const meta = metaOf(record)
    let manifest: Manifest
    try {
      manifest = decodeManifest(await this.#readLocal(record.manifestId, signal))
    } catch (err) {
      if (!LOCAL_MISS.has(codeOf(err) ?? '')) throw err
      const { plain } = await this.#fetch(meta.manifestCipherId, maxCipherBytes(MAX_MANIFEST_BYTES), meta.refId, (cipher) => this.#decryptBlob(cipher, record.manifestId), signal)
      manifest = decodeManifest(plain)
      await this.#ensureLocal(record.manifestId, plain, codeOf(err) === 'ERR_INTEGRITY')
    }
    if (manifest.key !== key || manifest.version !== record.version) throw new UnavailableError(`the manifest of "${key}" does not match its ref`)
    return { record, manifest }
  }

  /**
   * Asks the peers for a ref this node lost; installs the newest live version unless a delete is newer.
   * `holdsKeyLock`: the caller already holds the key's lock.
   */
  async #recoverRef(key: string, signal: AbortSignal, holdsKeyLock = false): Promise<RefRecord> {
    const refId = refIdOf(this.#keys!, key)
    const answers = await Promise.all(this.#connected().map((conn) => getRef(conn, refId, this.#requestSignal(signal)).catch(() => undefined)))
    const live: RemoteRef[] = []
    for (const ref of answers) {
      if (ref === undefined) continue
      if (!ref.deleted) live.push(ref)
      else {
        const tomb = this.#ownTombstone(ref)
        if (tomb !== undefined) await this.#noteRemoteTombstone(tomb)
      }
    }
    // Newest first; a version no peer can back with its manifest (a lying peer) gives way to the next.
    let failure: Error | undefined
    for (const ref of live.sort((x, y) => y.version - x.version)) {
      try {
        const installed = await this.#installRecovered(refId, ref, signal, holdsKeyLock ? key : undefined)
        if (installed === undefined || installed.key !== key) throw new NotFoundError(`no object is stored under "${key}"`)
        return installed.record
      } catch (err) {
        if (signal.aborted || !(err instanceof Error) || codeOf(err) === 'ERR_NOT_FOUND') throw err
        failure = err
      }
    }
    if (failure !== undefined) throw failure
    throw new NotFoundError(`no object is stored under "${key}"`)
  }

  /**
   * The manifest a peer holds for one of this node's refs, decrypted and checked: it must name a key
   * whose refId is `refId`, at the version the peer reported. A peer cannot make one up (it holds no
   * key that gives the refId), so its version and write time can be trusted.
   */
  async #remoteManifest(refId: string, remote: RemoteRef, signal: AbortSignal): Promise<RemoteManifest> {
    let manifestId = ''
    const { plain } = await this.#fetch(remote.manifestCipherId!, maxCipherBytes(MAX_MANIFEST_BYTES), refId, async (cipher) => {
      const bytes = asBuffer(await decryptBytes(cipher, [this.#keys!.identity]))
      manifestId = sha256Hex(bytes)
      return bytes
    }, signal)
    const manifest = decodeManifest(plain)
    if (refIdOf(this.#keys!, manifest.key) !== refId || manifest.version !== remote.version) throw new UnavailableError(`a peer's manifest for ref ${refId} does not match it`)
    return { manifest, manifestId, plain }
  }

  /** The version of `refId` a peer holds, when this owner's proof or manifest backs it. */
  async #verifiedVersion(conn: Connection, refId: string, signal: AbortSignal): Promise<number | undefined> {
    try {
      const r = await getRef(conn, refId, this.#requestSignal(signal, true))
      if (r === undefined) return undefined
      return r.deleted ? this.#ownTombstone(r)?.version : (await this.#remoteManifest(refId, r, signal)).manifest.version
    } catch (err) {
      if (signal.aborted) throw err
      return undefined
    }
  }

  /** A peer's tombstone when this owner made it (its proof verifies); a peer cannot forge a delete. */
  #ownTombstone(r: RemoteRef): Tombstone | undefined {
    const tomb = { refId: r.refId, version: r.version, deletedAt: r.writtenAt, proof: r.proof }
    return r.deleted && isOwnTombstone(this.#keys!, tomb) ? tomb : undefined
  }

  /** Remembers the newest delete a peer reports for a ref this node may not know: no stale copy is installed over it. */
  async #noteRemoteTombstone({ refId, ...tomb }: Tombstone): Promise<void> {
    const table = this.#tables!.remoteTombstones
    if ((table.get(refId)?.version ?? -1) >= tomb.version) return
    await this.#index!.transaction((tx) => tx.put(table, refId, tomb))
  }

  /**
   * Fetches, checks and installs a ref a peer holds for us; `undefined` when a newer local state or a
   * known later delete wins. `lockedKey`: the caller holds that key's lock (and expects that key).
   */
  async #installRecovered(refId: string, remote: RemoteRef, signal: AbortSignal, lockedKey?: string, fetched?: RemoteManifest): Promise<{ key: string; record: RefRecord } | undefined> {
    const index = this.#index!
    const tables = this.#tables!
    const deleted = tables.remoteTombstones.get(refId)
    if (deleted !== undefined && deleted.version >= remote.version) return undefined
    const { manifest, manifestId, plain } = fetched ?? (await this.#remoteManifest(refId, remote, signal))
    const key = manifest.key
    if (lockedKey !== undefined && lockedKey !== key) throw new UnavailableError(`a peer's manifest for ref ${refId} names another key`)
    const install = async (): Promise<{ key: string; record: RefRecord } | undefined> => {
      const current = index.refs.get(key)
      const tomb = index.tombstones.get(key)
      // The owner's own write time, from the manifest it encrypted, decides: a peer's word does not.
      if (current !== undefined && (current.version >= manifest.version || current.updatedAt > manifest.createdAt)) return undefined
      if (tomb !== undefined && (tomb.version >= manifest.version || tomb.deletedAt > manifest.createdAt)) return undefined
      await this.#ensureLocal(manifestId, plain)
      const recipientsId = sha256Hex(Buffer.from(manifest.recipients.join('\n')))
      const meta: RefMeta = { refId, manifestCipherId: remote.manifestCipherId!, chunkCount: manifest.chunks.length, recipientsId }
      const record: RefRecord = { manifestId, size: manifest.size, sha256: manifest.sha256, version: manifest.version, updatedAt: manifest.createdAt, meta: { ...meta } }
      const blobIds = [...new Set([...manifest.chunks.map((c) => c.plainId), manifestId])]
      const previous = tables.refBlobs.get(key) ?? []
      const freed = await index.transaction((tx) => {
        // Checked in the commit itself: a delete another peer reported meanwhile wins.
        if ((tx.get(tables.remoteTombstones, refId)?.version ?? -1) >= manifest.version) return undefined
        tx.put(index.refs, key, record)
        tx.put(tables.refBlobs, key, blobIds)
        tx.delete(index.tombstones, key)
        if (tx.get(tables.recipientSets, recipientsId) === undefined) tx.put(tables.recipientSets, recipientsId, manifest.recipients)
        for (const c of manifest.chunks) if (tx.get(tables.chunks, c.plainId) === undefined) tx.put(tables.chunks, c.plainId, { cipherId: c.cipherId, recipientsId })
        for (const id of blobIds) tx.add(index.refcounts, id, 1)
        return previous.filter((id) => tx.add(index.refcounts, id, -1) === 0)
      })
      if (freed === undefined) {
        await this.#freeLocal([manifestId])
        return undefined
      }
      await this.#freeLocal(freed)
      this.#log.info({ key, version: manifest.version }, 'recovered ref from peer')
      return { key, record }
    }
    return lockedKey !== undefined ? install() : this.#locks.run(`key:${key}`, install)
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
    let record = index.refs.get(key)
    if (record === undefined) {
      if (index.tombstones.has(key)) throw new NotFoundError(`"${key}" was already deleted`)
      record = await this.#recoverRef(key, signal ?? this.#shutdown.signal, true)
    }
    const { version } = record
    const tomb = await this.#commitDelete(key, version, Date.now())
    const acknowledged: string[] = []
    await Promise.all(
      this.#connected().map(async (conn) => {
        try {
          await deleteRef(conn, tomb, this.#requestSignal(signal))
          acknowledged.push(conn.remoteNodeId)
        } catch (err) {
          this.#log.warn({ key, peer: conn.remoteNodeId, err: message(err) }, 'delete on peer failed; retrying in the background')
          this.#enqueue(conn, 'delete', () => deleteRef(conn, tomb, this.#requestSignal(undefined, true)))
        }
      }),
    )
    const pending = this.peers()
      .map((p) => p.nodeId)
      .filter((id) => !acknowledged.includes(id))
    this.#log.info({ key, version, acknowledged: acknowledged.length, pending: pending.length }, 'deleted')
    return { acknowledged, pending }
  }

  /** Deletes `key` locally up to `version`: the ref goes, a tombstone stays, unused blobs are freed. */
  async #commitDelete(key: string, version: number, deletedAt: number): Promise<Tombstone> {
    const index = this.#index!
    const tables = this.#tables!
    const refId = refIdOf(this.#keys!, key)
    const blobIds = tables.refBlobs.get(key) ?? []
    const freed = await index.transaction((tx) => {
      tx.delete(index.refs, key)
      tx.delete(tables.refBlobs, key)
      tx.put(index.tombstones, key, { version, deletedAt })
      for (const [k] of index.peerState.entries({ prefix: `${refId}/` })) tx.delete(index.peerState, k)
      return blobIds.filter((id) => tx.add(index.refcounts, id, -1) === 0)
    })
    await this.#freeLocal(freed)
    return signTombstone(this.#keys!, refId, version, deletedAt)
  }

  async scrub(options: SignalOptions = {}): Promise<ScrubResult> {
    throwIfAborted(options.signal)
    if (this.#state !== 'open') throw new ClosedError()
    const result: ScrubResult = { objects: 0, bytes: 0, healed: 0, failed: [] }
    let current: string | undefined
    const onHealed = (e: HealedEvent): void => {
      if (e.key === current) result.healed++
    }
    this.on('healed', onHealed)
    try {
      const page = 100
      let after: string | undefined
      for (;;) {
        const entries = await this.list({ limit: page, ...(after === undefined ? {} : { after }) })
        for (const { key } of entries) {
          current = key
          try {
            for await (const piece of this.read(key, options.signal === undefined ? {} : { signal: options.signal })) result.bytes += (piece as Buffer).length
            result.objects++
          } catch (err) {
            if (options.signal?.aborted === true || this.#state !== 'open') throw err
            if (codeOf(err) === 'ERR_NOT_FOUND') continue // deleted while the scrub ran
            const code = codeOf(err)
            result.failed.push({ key, ...(code === undefined ? {} : { code }), message: message(err) })
          }
        }
        if (entries.length < page) break
        after = entries.at(-1)!.key
      }
    } finally {
      this.off('healed', onHealed)
    }
    this.#log.info({ objects: result.objects, bytes: result.bytes, healed: result.healed, failed: result.failed.length }, 'scrubbed')
    return result
  }

  // ---- catch-up -----------------------------------------------------------

  #scheduleSync(conn: Connection): void {
    this.#enqueue(conn, 'catch-up', () => this.#sync(conn))
  }

  /** Runs catch-up with a peer again later, when `err` may pass and the connection stays open (see {@link BehindEvent}). */
  #retryLater(conn: Connection, err: unknown): void {
    const nodeId = conn.remoteNodeId
    const attempt = this.#retryAttempts.get(nodeId) ?? 0
    if (!mayPass(err) || !conn.open || this.#state !== 'open' || this.#retries.has(nodeId)) return
    this.#retryAttempts.set(nodeId, attempt + 1)
    const retryIn = Math.min(RETRY_FIRST_MS * 2 ** attempt, RETRY_MAX_MS)
    let fire!: () => void
    const due = new Promise<void>((resolve) => (fire = resolve))
    const timer = setTimeout(() => {
      this.#retries.delete(nodeId)
      if (conn.open && this.#state === 'open' && this.#conns.get(nodeId) === conn) this.#scheduleSync(conn)
      fire()
    }, retryIn)
    timer.unref()
    this.#retries.set(nodeId, { conn, timer, due, fire, awaited: attempt < RETRY_AWAITED })
    this.#log.info({ peer: nodeId, retryIn, err: message(err) }, 'peer fell behind; catching up again later')
    this.emit('peer:behind', { nodeId, retryIn, message: message(err) })
  }

  /** Drops the retry due for a peer (only if it is due on `conn`, when given), releasing whoever waits for it. */
  #dropRetry(nodeId: string, conn?: Connection): void {
    const retry = this.#retries.get(nodeId)
    if (retry === undefined || (conn !== undefined && retry.conn !== conn)) return
    clearTimeout(retry.timer)
    this.#retries.delete(nodeId)
    retry.fire()
  }

  /** Runs background work for one peer after the work queued before it (catch-up, late replication). */
  #enqueue(conn: Connection, what: string, fn: () => Promise<void>): void {
    const nodeId = conn.remoteNodeId
    const previous = this.#peerQueues.get(nodeId) ?? Promise.resolve()
    const run = previous
      .then(() => (conn.open && this.#state === 'open' ? fn() : undefined))
      .catch((err: unknown) => {
        if (this.#shutdown.signal.aborted) return
        this.#log.warn({ peer: nodeId, err: message(err) }, `${what} failed`)
        this.#retryLater(conn, err)
      })
      .finally(() => {
        if (this.#peerQueues.get(nodeId) === run) this.#peerQueues.delete(nodeId)
      })
    this.#peerQueues.set(nodeId, run)
  }

  /**
   * Brings one peer up to date with this node's refs and tombstones, and recovers refs this node lost.
   * Every version of a key is written by this node, its only writer: where the peer knows a version or a
   * delete this node does not (its index was lost or restored), whichever was written last wins.
   */
  async #sync(conn: Connection): Promise<void> {
    if (!conn.open || this.#state !== 'open') return
    const signal = this.#shutdown.signal
    const index = this.#index!
    const keys = this.#keys!
    const remote = new Map<string, RemoteRef>()
    for await (const ref of listRefs(conn, () => this.#requestSignal(undefined, true))) remote.set(ref.refId, ref)
    const known = new Set<string>()
    // One key that cannot be brought over must not hold back the others; a failure that may pass brings a retry.
    let retry: unknown
    const step = async (key: string, what: string, fn: () => Promise<unknown>): Promise<void> => {
      try {
        await fn()
      } catch (err) {
        if (signal.aborted) throw err
        this.#log.warn({ peer: conn.remoteNodeId, key, err: message(err) }, `catch-up: ${what} failed`)
        if (mayPass(err)) retry ??= err
      }
    }
    // Deletes first: they free space, and a stale copy must never outlive them.
    for (const [key, tomb] of index.tombstones.entries()) {
      throwIfAborted(signal)
      const refId = refIdOf(keys, key)
      known.add(refId)
      const r = remote.get(refId)
      if (r?.deleted === true && r.version >= tomb.version) continue
      // A peer that never held the key gets the delete too: it keeps the version, for recovery from identity/.
      if (r === undefined || r.version <= tomb.version) await step(key, 'delete', () => deleteRef(conn, signTombstone(keys, refId, tomb.version, tomb.deletedAt), this.#requestSignal(undefined, true)))
      else if (!r.deleted) await step(key, 'recovering a newer version', () => this.#installRecovered(refId, r, signal))
    }
    for (const [key, record] of index.refs.entries()) {
      throwIfAborted(signal)
      const meta = metaOf(record)
      known.add(meta.refId)
      const r = remote.get(meta.refId)
      if (r === undefined || r.damaged === true || r.version < record.version) {
        await step(key, 'replication', () => this.#locks.run(`key:${key}`, () => this.#replicateTo(conn, key)))
      } else if (r.deleted || r.version > record.version || r.manifestCipherId !== meta.manifestCipherId) {
        // A delete counts only with this owner's proof: a peer cannot delete what it holds for us.
        const tomb = this.#ownTombstone(r)
        if (r.deleted && tomb === undefined) {
          this.#log.warn({ peer: conn.remoteNodeId, key }, 'catch-up: the peer reports a delete this node never made; ignored')
          continue
        }
        if (tomb !== undefined) {
          if (tomb.deletedAt >= record.updatedAt) await step(key, 'applying a newer delete', () => this.#applyRemoteTombstone(key, tomb))
          else await step(key, 'superseding an older delete', () => this.#bumpVersion(key, tomb.version))
          continue
        }
        // The peer's version counts only as far as its manifest (which only this owner can make) backs it.
        await step(key, 'reconciling versions', async () => {
          const fetched = await this.#remoteManifest(meta.refId, r, signal)
          if (fetched.manifest.createdAt >= record.updatedAt) await this.#installRecovered(meta.refId, r, signal, undefined, fetched)
          else await this.#bumpVersion(key, fetched.manifest.version)
        })
      }
    }
    const deletes: Tombstone[] = []
    for (const r of remote.values()) {
      if (known.has(r.refId)) continue
      if (r.deleted) {
        const tomb = this.#ownTombstone(r)
        if (tomb === undefined) continue
        await step(r.refId, 'noting a delete', () => this.#noteRemoteTombstone(tomb))
        deletes.push(tomb)
      } else {
        await step(r.refId, 'recovering a ref', () => this.#installRecovered(r.refId, r, signal))
        // Another peer reported a later delete: this peer holds a stale copy, and is told.
        const deleted = this.#tables!.remoteTombstones.get(r.refId)
        if (deleted !== undefined && deleted.version >= r.version) {
          await step(r.refId, 'delete', () => deleteRef(conn, { refId: r.refId, ...deleted }, this.#requestSignal(undefined, true)))
        }
      }
    }
    // A ref recovered from another peer while this ran may be one of these deletes: whichever was written last wins.
    if (deletes.length > 0) {
      const keyOf = new Map<string, [string, RefRecord]>()
      for (const [key, record] of index.refs.entries()) keyOf.set(metaOf(record).refId, [key, record])
      for (const r of deletes) {
        const local = keyOf.get(r.refId)
        if (local !== undefined && local[1].version <= r.version && r.deletedAt >= local[1].updatedAt) {
          await step(local[0], 'applying a newer delete', () => this.#applyRemoteTombstone(local[0], r))
        }
      }
    }
    // Deletes this node did not know (they went with a lost index): new versions of those keys must go above them.
    await this.#raiseFloors(deletes.map((t) => [t.refId, t.version]))
    if (retry !== undefined) {
      this.#retryLater(conn, retry)
      return
    }
    this.#retryAttempts.delete(conn.remoteNodeId)
    this.#log.info({ peer: conn.remoteNodeId, refs: remote.size }, 'caught up')
    this.emit('synced', { nodeId: conn.remoteNodeId })
  }

  /** A peer holds a delete of `key` newer than this node's version: apply it here and on every peer. */
  async #applyRemoteTombstone(key: string, r: Tombstone): Promise<void> {
    const applied = await this.#locks.run(`key:${key}`, async () => {
      const record = this.#index!.refs.get(key)
      if (record === undefined || record.version > r.version) return false
      await this.#commitDelete(key, r.version, r.deletedAt)
      return true
    })
    if (!applied) return
    this.#log.info({ key, version: r.version }, 'applied a newer delete from a peer')
    for (const conn of this.#connected()) this.#enqueue(conn, 'delete', () => deleteRef(conn, r, this.#requestSignal(undefined, true)))
  }

  /** This node's version of `key` is the newest write but carries a lower number than a peer's: renumber it above `above`, everywhere. */
  async #bumpVersion(key: string, above: number): Promise<void> {
    const index = this.#index!
    const tables = this.#tables!
    const bumped = await this.#locks.run(`key:${key}`, async () => {
      const record = index.refs.get(key)
      if (record === undefined || record.version > above) return false
      const meta = metaOf(record)
      const { manifest } = await this.#resolve(key, this.#shutdown.signal, true)
      const next: Manifest = { ...manifest, version: above + 1 }
      const bytes = encodeManifest(next)
      const manifestId = sha256Hex(bytes)
      await this.#ensureLocal(manifestId, bytes)
      const recipients = tables.recipientSets.get(meta.recipientsId) ?? manifest.recipients
      const { cipherId: manifestCipherId } = await this.#encryptBlob(bytes, manifestId, meta.recipientsId, recipients)
      const updated: RefRecord = { ...record, manifestId, version: next.version, meta: { ...meta, manifestCipherId } }
      const blobIds = (tables.refBlobs.get(key) ?? []).map((id) => (id === record.manifestId ? manifestId : id))
      const freed = await index.transaction((tx) => {
        tx.put(index.refs, key, updated)
        tx.put(tables.refBlobs, key, blobIds)
        tx.add(index.refcounts, manifestId, 1)
        return tx.add(index.refcounts, record.manifestId, -1) === 0 ? [record.manifestId] : []
      })
      await this.#freeLocal(freed)
      return true
    })
    if (!bumped) return
    this.#log.info({ key, version: above + 1 }, 'renumbered the newest version above a peer\'s')
    for (const conn of this.#connected()) this.#enqueue(conn, 'replication', () => this.#locks.run(`key:${key}`, () => this.#replicateTo(conn, key)))
  }

  /** Sends one key's current version to a peer: the blobs it lacks, then the ref. Runs under the key's lock. */
  async #replicateTo(conn: Connection, key: string): Promise<void> {
    const index = this.#index!
    const record = index.refs.get(key)
    if (record === undefined) return
    const signal = this.#shutdown.signal
    const meta = metaOf(record)
    const { manifest } = await this.#resolve(key, signal, true)
    const plainOf = new Map(manifest.chunks.map((c) => [c.cipherId, c]))
    const cipherIds = [...plainOf.keys()]
    const cipherFor = async (cipherId: string): Promise<Uint8Array> => {
      const chunk = plainOf.get(cipherId)
      if (chunk === undefined && cipherId !== meta.manifestCipherId) throw new UnavailableError(`unknown blob ${cipherId}`)
      // A chunk lost here too is fetched from another peer first (and healed).
      if (chunk !== undefined) await this.#loadChunk(key, chunk, signal)
      return this.#cipherOf(chunk?.plainId ?? record.manifestId, cipherId, meta.recipientsId)
    }
    const blobIds = [...cipherIds, meta.manifestCipherId]
    try {
      const missing = await missingBlobs(conn, blobIds, this.#requestSignal(undefined, true))
      for (const cipherId of missing) await putBlob(conn, cipherId, () => cipherFor(cipherId), this.#requestSignal(undefined, true))
      const ref: RefPut = { refId: meta.refId, version: record.version, manifestCipherId: meta.manifestCipherId, size: record.size, writtenAt: record.updatedAt, cipherIds }
      await this.#putRefWithRetry(conn, ref, cipherFor, undefined, true)
    } catch (err) {
      // The blobs it got and no ref of its uses, it drops (after this, outside the key's lock): a connection
      // that stays open is never swept.
      this.#enqueue(conn, 'releasing the blobs of a failed replication', () => releaseBlobs(conn, blobIds, this.#requestSignal(undefined, true)))
      throw err
    }
    await index.transaction((tx) => tx.put(index.peerState, `${meta.refId}/${conn.remoteNodeId}`, { state: 'held', updatedAt: Date.now(), meta: { version: record.version } }))
  }

  // ---- maintenance --------------------------------------------------------

  async #replicaStore(owner: string): Promise<BlobStore> {
    if (!isHex64(owner)) throw new InvalidOptionsError('owner ids are 64 lowercase hex characters')
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
      if (!isHex64(owner)) continue
      const store = await this.#replicaStore(owner)
      for await (const id of store.list()) {
        if (!counts.has(`${owner}/${id}`)) {
          await store.delete(id)
          swept++
        }
      }
    }
    if (swept > 0) this.#log.info({ swept }, 'removed unreferenced blobs left by an interrupted write')
    // Replicas counted but gone from disk (lost or wiped) are marked damaged: the owner's catch-up resends them.
    const { damaged } = this.#holder!.tables
    const lost: string[] = []
    for (const [key] of counts.entries()) {
      const owner = key.slice(0, 64)
      if (!damaged.has(key) && !(await (await this.#replicaStore(owner)).has(key.slice(65)))) lost.push(key)
    }
    if (lost.length > 0) {
      await index.transaction((tx) => {
        for (const key of lost) tx.put(damaged, key, true)
      })
      this.#log.warn({ lost: lost.length }, 'replica blobs are missing from disk; their owners will send them again')
    }
  }
}

/** The largest age ciphertext of `plainSize` bytes: a 16-byte tag per 64 KiB record, the nonce, and room for the header. */
function maxCipherBytes(plainSize: number): number {
  return plainSize + 16 * (Math.ceil(plainSize / 65536) + 1) + 16 + 16 * 1024
}

/** `promise`, or an {@link AbortedError} as soon as `signal` aborts; the listener is removed either way. */
async function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise
  let onAbort!: () => void
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new AbortedError(undefined, { cause: signal.reason }))
    if (signal.aborted) onAbort()
    else signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    return await Promise.race([promise, aborted])
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}
