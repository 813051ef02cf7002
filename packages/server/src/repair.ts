// Repair and rebalance: the worker that keeps each of this owner's refs on its placed holders. A census
// walks the refs (at start, when membership changes, when asked for status after changes) and queues
// every ref with a placed holder lacking its current version, or a copy on a node it is no longer placed
// on. The queue lives in the index, ordered by live copies (fewest first) then due time, with a backoff
// per ref, so work resumes after a restart. Each job copies what is missing (throttled by the
// replicator's pace), checks that every placed holder reports the current version intact, and only then
// releases the copies that are no longer placed. Progress: copies per object, what is left, an ETA.
import { getRef, dropRef } from './client.js'
import { InFlight } from './concurrency.js'
import type { Deadlines } from './deadlines.js'
import { messageOf, throwIfAborted } from './errors.js'
import { metaOf, type LocalStore } from './local.js'
import type { Logger } from './logger.js'
import type { Peering, Placement } from './placement.js'
import type { Replicator } from './replication.js'
import type { PlacementStatus, RepairDoneEvent } from './types.js'
import type { IndexTable, RefRecord } from '@dcas/store'

/** One queued ref. */
interface QueueEntry {
  refId: string
  key: string
  /** Live copies when queued (its priority). */
  copies: number
  /** Bytes to copy when queued (size × missing copies). */
  bytes: number
  due: number
  attempts: number
  /** The placed holders when queued: a census that finds others starts its backoff afresh. */
  placed: string
}

/** Backoff of a ref whose repair failed: first and longest wait. */
const RETRY_FIRST_MS = 1_000
const RETRY_MAX_MS = 60_000
/** Refs per census page (then the event loop gets a turn). */
const CENSUS_PAGE = 256
/** Queued refs waiting out a backoff are made due when a peer connects, up to this many. */
const REWAKE_MAX = 10_000
/** A census quicker than this may run as often as asked. */
const CHEAP_CENSUS_MS = 100
/** The window the repair rate (for the ETA) is measured over. */
const RATE_WINDOW_MS = 60_000

export interface RepairOptions {
  local: LocalStore
  placement: Placement
  peering: Peering
  replicator: Replicator
  deadlines: Deadlines
  /** Refs repaired at once. */
  concurrency: number
  /** How many peer copies each object should have (for status). */
  target: () => number
  log: Logger
  /** Told each time placement becomes settled after work. */
  onDone: (event: RepairDoneEvent) => void
}

/** What placement says of one ref now. */
interface Evaluation {
  placed: string[]
  /** Nodes holding its current version, not lost. */
  live: string[]
  /** Placed nodes without the current version. */
  missing: string[]
  /** Nodes holding any version that it is not placed on. */
  surplus: string[]
}

const pad = (n: number, width: number): string => String(n).padStart(width, '0')
const queueKey = (e: Pick<QueueEntry, 'copies' | 'due' | 'refId'>): string => `${pad(Math.min(e.copies, 999), 3)}|${pad(e.due, 15)}|${e.refId}`

/** The repair and rebalance worker of one owner. */
export class Repairer {
  readonly #o: RepairOptions
  readonly #queue: IndexTable<QueueEntry>
  /** refId → its key in the queue. */
  readonly #queued: IndexTable<string>
  readonly #running = new Set<string>()
  readonly #waiters = new Set<() => void>()
  readonly #stop = new AbortController()
  #wake: (() => void) | undefined
  #timer: NodeJS.Timeout | undefined
  #loop: Promise<void> | undefined
  #objectsLeft = 0
  #bytesLeft = 0
  /** Copies per object found by the last census. */
  #histogram: Record<number, number> = {}
  /** A census is due: membership changed since the last one, so refs may need work nobody queued. */
  #dirty = true
  /** The copies per object are stale (objects were written since the last census). */
  #stale = true
  #census: Promise<void> | undefined
  #censusTimer: NodeJS.Timeout | undefined
  #lastCensus = { at: 0, ms: 0 }
  /** Queued refs by their copies, for picking the fewest copies first. */
  readonly #byCopies = new Map<number, number>()
  /** Bytes copied lately, for the rate. */
  #copied: Array<[at: number, bytes: number]> = []
  /** Since placement was last settled. */
  #work = { copied: 0, released: 0, bytes: 0 }

  constructor(options: RepairOptions) {
    this.#o = options
    this.#queue = options.local.index.table('repair_queue')
    this.#queued = options.local.index.table('repair_refs')
  }

  /** Resumes the queue left by the last run and starts the first census. */
  start(): void {
    for (const [, e] of this.#queue.entries()) this.#count(e, 1)
    this.#loop = this.#run()
    this.changed()
  }

  async close(): Promise<void> {
    this.#stop.abort()
    clearTimeout(this.#timer)
    clearTimeout(this.#censusTimer)
    this.#wake?.()
    await this.#loop
    await this.#census?.catch(() => {})
  }

  /** Membership changed: a census runs soon (no sooner than ten times the last one took, so it stays cheap). */
  changed(): void {
    this.#dirty = true
    this.#notify()
    if (this.#censusTimer !== undefined || this.#stop.signal.aborted) return
    this.#censusTimer = setTimeout(() => {
      this.#censusTimer = undefined
      void this.#runCensus().catch((err: unknown) => this.#o.log.warn({ err: messageOf(err) }, 'placement census failed'))
    }, Math.max(0, this.#lastCensus.at + this.#censusGap() - Date.now()))
    this.#censusTimer.unref()
  }

  /**
   * A peer connected: the queued refs waiting out a backoff are due now, their backoff started afresh (it may be
   * the holder they waited for). Skipped for a long queue, which is walked by its own due times.
   */
  async reachable(): Promise<void> {
    if (this.#objectsLeft === 0 || this.#objectsLeft > REWAKE_MAX || this.#stop.signal.aborted) return
    const now = Date.now()
    const waiting = [...this.#queue.entries()].filter(([, e]) => e.due > now && !this.#running.has(e.refId))
    if (waiting.length === 0) return
    await this.#o.local.index.transaction((tx) => {
      for (const [k, e] of waiting) {
        // Only an entry still queued as it was (a job may have finished or moved it meanwhile).
        if (tx.get(this.#queued, e.refId) !== k) continue
        const next = { ...e, due: now, attempts: 0 }
        tx.delete(this.#queue, k)
        tx.put(this.#queue, queueKey(next), next)
        tx.put(this.#queued, e.refId, queueKey(next))
      }
    })
    this.#wake?.()
  }

  /**
   * How long after a census the next may run: at once while a census is cheap (the counts then stay exact),
   * else ten times what the last one took (at most 30 s), so that counting never eats the node.
   */
  #censusGap(): number {
    const { ms } = this.#lastCensus
    return ms < CHEAP_CENSUS_MS ? 0 : Math.min(10 * ms, 30_000)
  }

  /** Whether placement is settled: no ref below its placed copies or misplaced, none queued, no census due. */
  get settled(): boolean {
    return this.#objectsLeft === 0 && !this.#dirty && this.#census === undefined
  }

  /** The progress of placement (a census runs first when things changed since the last one, at most so often). */
  async status(): Promise<PlacementStatus> {
    if (this.#census !== undefined) await this.#census
    if ((this.#dirty || this.#stale) && Date.now() - this.#lastCensus.at >= this.#censusGap()) await this.#runCensus()
    const eta = this.#eta()
    return {
      target: this.#o.target(),
      objectsByCopies: { ...this.#histogram },
      repair: { objectsLeft: this.#objectsLeft, bytesLeft: this.#bytesLeft, ...(eta === undefined ? {} : { etaSeconds: eta }), settled: this.settled },
    }
  }

  /** Resolves once placement is settled. */
  async waitSettled(signal?: AbortSignal): Promise<void> {
    for (;;) {
      throwIfAborted(signal)
      if (this.settled) return
      await new Promise<void>((resolve, reject) => {
        const done = (): void => {
          this.#waiters.delete(done)
          signal?.removeEventListener('abort', done)
          if (signal?.aborted === true) reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'))
          else resolve()
        }
        this.#waiters.add(done)
        signal?.addEventListener('abort', done, { once: true })
      })
    }
  }

  /** A store or delete of `key` finished: the census counts it, and a store short of its placed holders is queued. */
  async noteWrite(key: string): Promise<void> {
    this.#stale = true
    const record = this.#o.local.index.refs.get(key)
    if (record !== undefined) {
      const ev = this.#evaluate(record)
      if (this.#needsWork(ev)) await this.#enqueue([this.#entry(key, record, ev)])
    }
    this.#notify()
  }

  #entry(key: string, record: RefRecord, ev: Evaluation): QueueEntry {
    return { refId: metaOf(record).refId, key, copies: ev.live.length, bytes: record.size * ev.missing.length, due: Date.now(), attempts: 0, placed: ev.placed.join(',') }
  }

  /** Whether a ref has work to do: a placed holder lacks it, or a node it is not placed on and that is not lost holds it. */
  #needsWork(ev: Evaluation): boolean {
    return ev.missing.length > 0 || ev.surplus.some((id) => this.#stateOf(id) !== 'lost')
  }

  #stateOf(nodeId: string): string | undefined {
    return this.#o.peering.members().find((m) => m.nodeId === nodeId)?.state
  }

  /** What placement says of a ref now: who should hold it, who does, what is missing and what is surplus. */
  #evaluate(record: RefRecord, states?: Map<string, string | undefined>): Evaluation {
    const { placement, local, peering } = this.#o
    const { refId } = metaOf(record)
    const stateOf = states ?? new Map(peering.members().map((m) => [m.nodeId, m.state]))
    const placed = placement.placed(refId)
    const live: string[] = []
    const holders: string[] = []
    for (const [k, s] of local.index.peerState.entries({ prefix: `${refId}/` })) {
      if (s.state !== 'held') continue
      const nodeId = k.slice(refId.length + 1)
      if (!stateOf.has(nodeId)) continue
      holders.push(nodeId)
      if (s.meta?.version === record.version && stateOf.get(nodeId) !== 'lost') live.push(nodeId)
    }
    return { placed, live, missing: placed.filter((id) => !live.includes(id)), surplus: holders.filter((id) => !placed.includes(id)) }
  }

  /** Walks every ref: counts copies per object and queues those with work to do. */
  async #runCensus(): Promise<void> {
    if (this.#census !== undefined) return this.#census
    const run = (async () => {
      // Changes during the walk make it due again.
      this.#dirty = false
      this.#stale = false
      const started = performance.now()
      const { index } = this.#o.local
      const histogram: Record<number, number> = {}
      let after: string | undefined
      for (;;) {
        if (this.#stop.signal.aborted) return
        const states = new Map(this.#o.peering.members().map((m) => [m.nodeId, m.state]))
        const page = [...index.refs.entries({ limit: CENSUS_PAGE, ...(after === undefined ? {} : { after }) })]
        const work: QueueEntry[] = []
        for (const [key, record] of page) {
          const ev = this.#evaluate(record, states)
          histogram[ev.live.length] = (histogram[ev.live.length] ?? 0) + 1
          if (ev.missing.length > 0 || ev.surplus.some((id) => states.get(id) !== 'lost')) work.push(this.#entry(key, record, ev))
        }
        await this.#enqueue(work)
        if (page.length < CENSUS_PAGE) break
        after = page.at(-1)![0]
        await new Promise((resolve) => setImmediate(resolve))
      }
      this.#histogram = histogram
      this.#lastCensus = { at: Date.now(), ms: performance.now() - started }
    })()
    this.#census = run
    try {
      await run
    } finally {
      this.#census = undefined
      // Membership changed while it walked: walk again.
      if (this.#dirty && !this.#stop.signal.aborted) this.changed()
      this.#notify()
    }
  }

  /**
   * Queues refs. A ref already queued for the same placed holders keeps its due time and backoff; one whose
   * placed holders changed is due now.
   */
  async #enqueue(entries: QueueEntry[]): Promise<void> {
    if (entries.length === 0) return
    const { index } = this.#o.local
    await index.transaction((tx) => {
      for (const e of entries) {
        const previousKey = tx.get(this.#queued, e.refId)
        const previous = previousKey === undefined ? undefined : tx.get(this.#queue, previousKey)
        if (previous !== undefined) {
          if (previous.placed === e.placed && previous.copies === e.copies && previous.bytes === e.bytes) continue
          tx.delete(this.#queue, previousKey!)
          this.#count(previous, -1)
        }
        const next = previous !== undefined && previous.placed === e.placed ? { ...e, due: previous.due, attempts: previous.attempts } : e
        tx.put(this.#queue, queueKey(next), next)
        tx.put(this.#queued, next.refId, queueKey(next))
        this.#count(next, 1)
      }
    })
    this.#wake?.()
  }

  /** Counts a queue entry in (1) or out (-1). */
  #count(e: QueueEntry, sign: 1 | -1): void {
    this.#objectsLeft += sign
    this.#bytesLeft += sign * e.bytes
    const copies = Math.min(e.copies, 999)
    const n = (this.#byCopies.get(copies) ?? 0) + sign
    if (n <= 0) this.#byCopies.delete(copies)
    else this.#byCopies.set(copies, n)
  }

  /** Takes queued refs off the queue as they fall due, a few at a time, fewest copies first. */
  async #run(): Promise<void> {
    const jobs = new InFlight(Math.max(1, this.#o.concurrency))
    const signal = this.#stop.signal
    while (!signal.aborted) {
      const next = this.#next()
      if (next === undefined || next.due > Date.now()) {
        await new Promise<void>((resolve) => {
          this.#wake = resolve
          if (next !== undefined) this.#timer = setTimeout(resolve, Math.min(next.due - Date.now(), RETRY_MAX_MS)).unref()
        })
        clearTimeout(this.#timer)
        this.#wake = undefined
        continue
      }
      this.#running.add(next.refId)
      await jobs.add(() => this.#job(next).finally(() => {
        this.#running.delete(next.refId)
        this.#wake?.()
      }))
    }
    await jobs.drain()
  }

  /** The queued ref to work on next: of the due ones, the one with fewest copies; else the next to fall due. */
  #next(): QueueEntry | undefined {
    let soonest: QueueEntry | undefined
    const now = Date.now()
    for (const copies of [...this.#byCopies.keys()].sort((a, b) => a - b)) {
      // Within one number of copies the queue is ordered by due time: the first one not running is that level's soonest.
      for (const [, e] of this.#queue.entries({ prefix: `${pad(copies, 3)}|`, limit: this.#running.size + 1 })) {
        if (this.#running.has(e.refId)) continue
        if (e.due <= now) return e
        if (soonest === undefined || e.due < soonest.due) soonest = e
        break
      }
    }
    return soonest
  }

  /** One ref: copy it where it is missing, check the placed copies, release the surplus ones; again later if something failed. */
  async #job(entry: QueueEntry): Promise<void> {
    const { local, log } = this.#o
    let outcome: 'done' | 'retry' = 'done'
    let ev: Evaluation | undefined
    // No key lock over the transfers: the owner's own writes of the key go on (replicateTo pins the version's
    // chunks and records a copy only if the key is still at that version; a release names the version it drops).
    const run = async (): Promise<'done' | 'retry'> => {
      const record = local.index.refs.get(entry.key)
      if (record === undefined || metaOf(record).refId !== entry.refId) return 'done'
      const before = this.#evaluate(record)
      const failures = await this.#copy(entry.key, record, before.missing)
      if (local.index.refs.get(entry.key)?.version !== record.version) return 'retry'
      ev = this.#evaluate(record)
      if (ev.missing.length > 0 || failures > 0) return 'retry'
      if (ev.surplus.length > 0 && !(await this.#release(record, ev))) return 'retry'
      ev = this.#evaluate(record)
      // A surplus copy on a node not reached (and not lost) is tried again later; a lost one is released when it returns.
      return this.#needsWork(ev) ? 'retry' : 'done'
    }
    try {
      outcome = await run()
    } catch (err) {
      if (this.#stop.signal.aborted) return
      log.warn({ key: entry.key, err: messageOf(err) }, 'repair failed; trying again later')
      outcome = 'retry'
    }
    if (this.#stop.signal.aborted) return
    await this.#finish(entry, outcome, ev)
  }

  /** Copies the ref to each of `missing`: resolves to how many failed. */
  async #copy(key: string, record: RefRecord, missing: string[]): Promise<number> {
    const { peering, replicator, log } = this.#o
    let failures = 0
    for (const nodeId of missing) {
      try {
        const conn = await peering.connect(nodeId, this.#stop.signal)
        await replicator.replicateTo(conn, key)
        this.#work.copied++
        this.#work.bytes += record.size
        this.#copied.push([Date.now(), record.size])
      } catch (err) {
        if (this.#stop.signal.aborted) throw err
        failures++
        log.info({ key, peer: nodeId, err: messageOf(err) }, 'repair: copying to a placed holder failed')
      }
    }
    return failures
  }

  /**
   * Releases the copies on nodes the ref is no longer placed on, once every placed holder reports the current
   * version intact. A lost surplus holder is released when it returns. Resolves to whether the check passed.
   */
  async #release(record: RefRecord, ev: Evaluation): Promise<boolean> {
    const { peering, deadlines, local, log } = this.#o
    const { refId } = metaOf(record)
    for (const nodeId of ev.placed) {
      try {
        const conn = await peering.connect(nodeId, this.#stop.signal)
        const r = await getRef(conn, refId, deadlines.background())
        if (r === undefined || r.deleted || r.version !== record.version || r.damaged === true) {
          // The acknowledgement no longer holds: it is copied there again first.
          await local.index.transaction((tx) => tx.delete(local.index.peerState, `${refId}/${nodeId}`))
          return false
        }
      } catch (err) {
        if (this.#stop.signal.aborted) throw err
        return false
      }
    }
    for (const nodeId of ev.surplus) {
      const conn = peering.connection(nodeId) ?? (await peering.connect(nodeId, this.#stop.signal).catch(() => undefined))
      if (conn === undefined) continue
      try {
        await dropRef(conn, refId, record.version, deadlines.background())
        await local.index.transaction((tx) => tx.delete(local.index.peerState, `${refId}/${nodeId}`))
        this.#work.released++
      } catch (err) {
        if (this.#stop.signal.aborted) throw err
        log.info({ refId, peer: nodeId, err: messageOf(err) }, 'repair: releasing a surplus copy failed')
      }
    }
    return true
  }

  /** Takes a job off the queue, or puts it back with its backoff. */
  async #finish(entry: QueueEntry, outcome: 'done' | 'retry', ev: Evaluation | undefined): Promise<void> {
    const { index } = this.#o.local
    const attempts = entry.attempts + 1
    const retry: QueueEntry | undefined =
      outcome === 'retry'
        ? { ...entry, copies: ev?.live.length ?? entry.copies, due: Date.now() + Math.min(RETRY_FIRST_MS * 2 ** Math.min(attempts - 1, 20), RETRY_MAX_MS), attempts }
        : undefined
    await index.transaction((tx) => {
      const current = tx.get(this.#queued, entry.refId)
      if (current !== undefined) {
        const queued = tx.get(this.#queue, current)
        tx.delete(this.#queue, current)
        tx.delete(this.#queued, entry.refId)
        if (queued !== undefined) this.#count(queued, -1)
      }
      if (retry !== undefined) {
        tx.put(this.#queue, queueKey(retry), retry)
        tx.put(this.#queued, retry.refId, queueKey(retry))
        this.#count(retry, 1)
      }
    })
    this.#stale = true
    this.#notify()
  }

  /** Seconds left at the rate of the last minute's copies, when there is work and a rate to judge by. */
  #eta(): number | undefined {
    const now = Date.now()
    this.#copied = this.#copied.filter(([at]) => now - at < RATE_WINDOW_MS)
    if (this.#bytesLeft <= 0 || this.#copied.length === 0) return undefined
    const bytes = this.#copied.reduce((sum, [, b]) => sum + b, 0)
    const span = Math.max(now - this.#copied[0]![0], 1_000)
    return Math.ceil(this.#bytesLeft / (bytes / (span / 1000)))
  }

  /** Wakes whoever waits for the settled state; tells `onDone` when it settles after work. */
  #notify(): void {
    if (this.settled && (this.#work.copied > 0 || this.#work.released > 0)) {
      const done = { ...this.#work }
      this.#work = { copied: 0, released: 0, bytes: 0 }
      this.#o.log.info(done, 'placement settled')
      this.#o.onDone(done)
    }
    for (const w of [...this.#waiters]) w()
  }
}
