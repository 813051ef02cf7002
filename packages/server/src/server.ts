// The server: builds its parts from the options, owns the lifecycle (start, close) and the public
// events, and hands each call of the public API to the part that does it.
import { EventEmitter } from 'node:events'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { clusterSecretWarning, loadOrCreateIdentity, parseAddress, tcpTransport, type Connection, type Transport } from '@dcas/p2p'
import { openBlobStore, openIndex, type BlobStore, type Index } from '@dcas/store'
import { Background } from './background.js'
import { Catalogue } from './catalogue.js'
import { fixedSizeChunker, DEFAULT_CHUNK_SIZE, type Chunker } from './chunker.js'
import { BlobCipher } from './cipher.js'
import { Deadlines } from './deadlines.js'
import { Deleter } from './delete.js'
import { ClosedError, InvalidOptionsError, NotFoundError, throwIfAborted } from './errors.js'
import { Fetcher } from './fetcher.js'
import { Holder } from './holder.js'
import { assertValidLimits } from './replica-space.js'
import { assertValidKey } from './key.js'
import { LocalStore, metaOf } from './local.js'
import { KeyLocks } from './locks.js'
import { silentLogger, type Logger } from './logger.js'
import { everyPeer, Placement } from './placement.js'
import { Peers } from './peers.js'
import { ReadPath } from './read.js'
import { Replicator } from './replication.js'
import { migrate } from './migrate.js'
import { Retriever, type HealObserver } from './retriever.js'
import { DEFAULT_AUDIT_SAMPLE, scrub } from './scrub.js'
import { Auditor } from './audit.js'
import { loadClusterSecret, loadOwnerKeys } from './secrets.js'
import type { StoreData } from './source.js'
import { CatchUp } from './sync.js'
import type { ComposeSource, DeleteResult, ListEntry, ListOptions, ObjectStat, OpenObject, PeerInfo, ReadOptions, ScrubOptions, ScrubResult, Server, ServerEvents, ServerOptions, SignalOptions, StoreOptions, StoreResult } from './types.js'
import { WritePath } from './write.js'

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
  background: Background
  catchUp: CatchUp
  writes: WritePath
  reads: ReadPath
  deleter: Deleter
  auditor: Auditor
}

class DcasServer extends EventEmitter<ServerEvents> implements Server {
  readonly #options: ServerOptions
  readonly #log: Logger
  readonly #chunker: Chunker
  readonly #concurrency: number
  readonly #keyLocks = new KeyLocks()
  readonly #ops = new Set<Promise<unknown>>()
  readonly #reads = new Set<Readable>()
  /** The close() of each open version. */
  readonly #opened = new Set<() => void>()
  readonly #shutdown = new AbortController()
  #state: 'new' | 'starting' | 'open' | 'closing' | 'closed' = 'new'
  #parts: Parts | undefined
  #address: string | undefined

  constructor(options: ServerOptions) {
    super()
    if (typeof options?.root !== 'string' || options.root.length === 0) throw new InvalidOptionsError('root (the data directory) is required')
    const quorum = options.writeQuorum ?? 'all'
    if (quorum !== 'all' && (!Number.isSafeInteger(quorum) || quorum < 0)) throw new InvalidOptionsError(`writeQuorum must be 'all' or a non-negative integer, got ${String(quorum)}`)
    assertValidLimits(options.holderLimits)
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
    const keys = await loadOwnerKeys(identityDir)
    const recoveryRecipients = this.#options.recoveryRecipients ?? []
    for (const r of recoveryRecipients) if (!r.startsWith('age1')) throw new InvalidOptionsError(`recovery recipient "${r}" is not an age1… recipient`)
    const index = await openIndex({ path: join(root, 'index') })
    const blobs = await openBlobStore({ root })
    const log = this.#log
    const local = new LocalStore({ index, blobs, log, concurrency: this.#concurrency })
    const holder = new Holder({ root, index, log, ...(this.#options.holderLimits === undefined ? {} : { limits: this.#options.holderLimits }) })
    await local.sweepOrphans()
    await holder.open()
    const transport = this.#options.transport ?? (await this.#tcpTransport(identityDir))

    const running = (): boolean => this.#state === 'open'
    const deadlines = new Deadlines(this.#options.requestTimeout ?? 30_000, this.#shutdown.signal)
    const background = new Background({ log, running, current: (conn) => peers.connection(conn.remoteNodeId) === conn, onBehind: (e) => this.emit('peer:behind', e) })
    const peers: Peers = new Peers({
      transport,
      index,
      table: local.tables.peers,
      log,
      accepting: () => this.#state === 'open' || this.#state === 'starting',
      signal: this.#shutdown.signal,
      events: {
        connected: (conn) => this.#connected(conn),
        closed: (conn, current) => {
          // A retry due on this connection is moot: the next connection catches up from scratch.
          background.drop(conn.remoteNodeId, conn)
          if (current) this.emit('peer:disconnect', peers.infoOf(conn.remoteNodeId, false))
        },
        dialError: (e) => this.emit('dial:error', e),
      },
    })
    const placement = new Placement(this.#options.placement ?? everyPeer, peers, (refId, nodeId) => index.peerState.has(`${refId}/${nodeId}`))
    const cipher = new BlobCipher(keys, local, recoveryRecipients)
    const fetcher = new Fetcher(placement, deadlines, background)
    const retriever = new Retriever({ local, cipher, fetcher, log, macKey: keys.manifestKey, onHealed: (e) => this.emit('healed', e) })
    const keyLocks = this.#keyLocks
    const catalogue = new Catalogue({ keys, local, cipher, fetcher, retriever, placement, keyLocks, deadlines, log })
    const replicator = new Replicator({ local, cipher, catalogue, retriever, background, keyLocks, deadlines, concurrency: this.#concurrency, log })
    const deleter = new Deleter({ keys, local, catalogue, placement, membership: peers, background, keyLocks, deadlines, log })
    const catchUp = new CatchUp({ keys, local, catalogue, deleter, replicator, placement, background, keyLocks, deadlines, log, onSynced: (nodeId) => this.emit('synced', { nodeId }) })
    const writes = new WritePath({
      keys,
      local,
      cipher,
      catalogue,
      placement,
      replicator,
      retriever,
      chunker: this.#chunker,
      writeQuorum: this.#options.writeQuorum ?? 'all',
      concurrency: this.#concurrency,
      shutdown: this.#shutdown.signal,
      log,
    })
    const reads = new ReadPath({ catalogue, retriever, concurrency: this.#concurrency, shutdown: this.#shutdown.signal })
    await migrate(local, catalogue, keyLocks, keys.manifestKey, log)
    const auditor = new Auditor({ local, cipher, membership: peers, replicator, deadlines, log })
    this.#parts = { transport, index, blobs, local, catalogue, holder, peers, background, catchUp, writes, reads, deleter, auditor }

    this.#address = await transport.listen(this.#options.listen ?? '127.0.0.1:0', (conn) => peers.adopt(conn))
    this.#state = 'open'
    log.info({ nodeId: this.nodeId, address: this.#address }, 'listening')
    for (const address of this.#options.bootstrap ?? []) void peers.dial(address)
  }

  /** A connection became the one in use for its peer (connections come only once the parts are made): serve its requests, and catch it up. */
  #connected(conn: Connection): void {
    const { holder, peers, background, catchUp } = this.#parts!
    void holder.serve(conn)
    this.emit('peer:connect', peers.infoOf(conn.remoteNodeId, true))
    background.succeeded(conn.remoteNodeId)
    catchUp.schedule(conn)
  }

  async #tcpTransport(identityDir: string): Promise<Transport> {
    const clusterSecret = await loadClusterSecret(identityDir, this.#options.clusterSecret)
    const weak = clusterSecretWarning(clusterSecret)
    if (weak !== undefined) this.#log.warn({}, weak)
    const host = parseAddress(this.#options.listen ?? '127.0.0.1:0', { allowPortZero: true }).host
    if (!['127.0.0.1', '::1', 'localhost'].includes(host)) {
      this.#log.warn({ listen: this.#options.listen }, 'the peer port is open beyond this machine: anyone who can reach it may try to join (admission needs the cluster secret)')
    }
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
    for (const close of [...this.#opened]) close()
    const parts = this.#parts
    if (parts !== undefined) {
      await parts.background.close()
      await parts.local.drain()
      // Peers get a few seconds to finish their streams with us, then the connections are cut.
      await parts.transport.close({ signal: AbortSignal.timeout(5_000) })
      await parts.holder.close()
      await parts.blobs.close()
      await parts.index.close()
    }
    this.#state = 'closed'
  }

  peers(): PeerInfo[] {
    return this.#parts?.peers.info() ?? []
  }

  async waitForPeers(count: number, options: SignalOptions = {}): Promise<void> {
    await this.#open().peers.waitFor(count, options.signal)
  }

  async waitForSync(options: SignalOptions = {}): Promise<void> {
    await this.#started().background.waitForSync(options.signal)
  }

  async store(key: string, data: StoreData, options: StoreOptions = {}): Promise<StoreResult> {
    assertValidKey(key)
    throwIfAborted(options.signal)
    return this.#track((parts) => this.#keyLocks.run(key, (held) => parts.writes.store(held, data, options)))
  }

  async compose(key: string, sources: Array<string | ComposeSource>, options: StoreOptions = {}): Promise<StoreResult> {
    assertValidKey(key)
    if (!Array.isArray(sources) || sources.length === 0) throw new InvalidOptionsError('compose needs at least one source key')
    const wanted = sources.map((s) => (typeof s === 'string' ? { key: s } : s))
    for (const source of wanted) {
      assertValidKey(source.key)
      if (source.version !== undefined && (!Number.isSafeInteger(source.version) || source.version < 1)) throw new InvalidOptionsError(`a source's version must be a positive integer, got ${source.version}`)
    }
    throwIfAborted(options.signal)
    return this.#track((parts) => this.#keyLocks.run(key, (held) => parts.writes.compose(held, wanted, options)))
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
      const signal = options.signal === undefined ? this.#shutdown.signal : AbortSignal.any([options.signal, this.#shutdown.signal])
      const { record, manifest } = await parts.catalogue.resolve(key, signal)
      const { refId } = metaOf(record)
      // That version's blobs stay while it is open, whatever happens to the key.
      const pinned = [...new Set(manifest.chunks.map((c) => c.plainId)), record.manifestId]
      for (const id of pinned) parts.local.pin(id)
      const close = (): void => {
        if (!this.#opened.delete(close)) return
        for (const id of pinned) parts.local.unpin(id)
      }
      this.#opened.add(close)
      return {
        stat: parts.catalogue.statOf(key, record),
        read: (o: ReadOptions = {}) => {
          if (!this.#opened.has(close)) throw new ClosedError('this version was closed')
          const { offset, length } = rangeOf(o)
          return this.#readable((observer) => parts.reads.stream(key, refId, manifest, offset, length, o.signal, observer))
        },
        close,
      }
    })
  }

  /** A verified read as a Readable that close() ends; `observer` is told of each chunk it heals. */
  #read(key: string, offset: number, length: number | undefined, signal: AbortSignal | undefined, observer?: HealObserver): Readable {
    return this.#readable((o) => this.#parts!.reads.read(key, offset, length, signal, o), observer)
  }

  /** The bytes of `source` as a Readable that close() waits for, and ends with ERR_CLOSED. */
  #readable(source: (observer: HealObserver | undefined) => AsyncGenerator<Uint8Array>, observer?: HealObserver): Readable {
    if (this.#state !== 'open') throw new ClosedError()
    const ops = this.#ops
    const tracked = async function* (): AsyncGenerator<Uint8Array> {
      let finish!: () => void
      const op = new Promise<void>((resolve) => (finish = resolve))
      ops.add(op)
      try {
        yield* source(observer)
      } finally {
        ops.delete(op)
        finish()
      }
    }
    const readable = Readable.from(tracked(), { objectMode: false, highWaterMark: 1 })
    this.#reads.add(readable)
    readable.once('close', () => this.#reads.delete(readable))
    return readable
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
    return this.#track((parts) => this.#keyLocks.run(key, (held) => parts.deleter.delete(held, options.signal)))
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
    const p = fn(this.#parts!)
    this.#ops.add(p)
    try {
      return await p
    } finally {
      this.#ops.delete(p)
    }
  }
}
