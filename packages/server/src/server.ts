// The server: has its parts made from the options (parts.ts), owns the lifecycle (start, close) and
// the public events, and hands each call of the public API to the part that does it.
import { EventEmitter, setMaxListeners } from 'node:events'
import type { Readable } from 'node:stream'
import { fixedSizeChunker, DEFAULT_CHUNK_SIZE, type Chunker } from './chunker.js'
import { drainNode } from './drain.js'
import { ClosedError, InvalidOptionsError, NotFoundError, throwIfAborted } from './errors.js'
import { CallerWork } from './caller-work.js'
import { assertValidKey } from './key.js'
import { metaOf } from './local.js'
import { KeyLocks } from './locks.js'
import { silentLogger, type Logger } from './logger.js'
import { assembleParts, infoOf, type Parts } from './parts.js'
import { everyPeer, rendezvous, type PlacementPolicy } from './placement.js'
import type { HealObserver } from './retriever.js'
import { DEFAULT_AUDIT_SAMPLE, scrub } from './scrub.js'
import type { StoreData } from './source.js'
import { checkServerOptions } from './settings.js'
import type { ComposeSource, DeleteResult, DrainOptions, DrainResult, ListEntry, ListOptions, ObjectStat, OpenObject, PeerInfo, PlacementStatus, ReadOptions, ScrubOptions, ScrubResult, Server, ServerEvents, ServerOptions, SignalOptions, StoreOptions, StoreResult } from './types.js'
import { anySignal } from './signals.js'

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
    const settings = { policy: this.#policy, lostAfter: this.#lostAfter, chunker: this.#chunker, concurrency: this.#concurrency, keyLocks: this.#keyLocks, log: this.#log }
    this.#parts = await assembleParts(this.#options, settings, {
      events: this,
      running: () => this.#state === 'open',
      accepting: () => this.#state === 'open' || this.#state === 'starting',
      shutdown: this.#shutdown.signal,
      parts: () => this.#parts,
      address: () => this.#address,
    })
    const { transport, membership, peers, repair, introductions } = this.#parts
    membership.open()
    this.#address = await transport.listen(this.#options.listen ?? '127.0.0.1:0', (conn) => peers.adopt(conn))
    membership.start()
    this.#state = 'open'
    this.#log.info({ nodeId: this.nodeId, address: this.#address }, 'listening')
    repair.start()
    for (const address of this.#options.bootstrap ?? []) void peers.dial(address)
    peers.maintain()
    void introductions.sweep()
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
    const parts = this.#parts
    if (parts === undefined) return []
    return parts.membership.members().map((m) => infoOf(parts, m.nodeId))
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
