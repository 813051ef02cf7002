// Background work toward each peer: one serial queue per peer (catch-up, late replication, deletes,
// releases), and retries with backoff of a task that failed in a way that may pass, while the
// peer stays connected. `waitForSync` waits for the queues and the first retries.
import type { Connection } from '@dcas/p2p'
import { raceAbort } from './concurrency.js'
import { codeOf, messageOf, throwIfAborted } from './errors.js'
import type { Logger } from './logger.js'
import type { BehindEvent } from './types.js'

/**
 * First and longest wait before a failed task runs again; `waitForSync` waits for the first RETRY_AWAITED
 * retries in a row (about a minute and a half), the later ones go on in the background.
 */
const RETRY_FIRST_MS = 500
const RETRY_MAX_MS = 30_000
const RETRY_AWAITED = 8

/**
 * Whether a failure of background work toward a peer may pass by itself, so that the work is worth
 * running again: the peer reset or refused the stream (its disk was full, an I/O error, too many streams
 * at once), refused a blob while its disk is (nearly) full (`ERR_DISK_FULL`), a stream stalled past its
 * idle deadline, or a request timed out (the stream is reset locally, or the request could not even start
 * in time). Not: bytes nowhere to be had, a newer version there, a quota, a peer breaking the protocol, a
 * closed connection (it catches up when it reconnects).
 */
export function mayPass(err: unknown): boolean {
  const code = codeOf(err)
  if (code === 'ERR_STREAM_RESET' || code === 'ERR_TOO_MANY_STREAMS' || code === 'ERR_STREAM_REFUSED' || code === 'ERR_PEER_TIMEOUT') return true
  if (code === 'ERR_PEER' && (err as { remoteCode?: unknown }).remoteCode === 'ERR_DISK_FULL') return true
  if (code !== 'ERR_ABORTED') return false
  for (let cause = (err as { cause?: unknown }).cause, depth = 0; cause instanceof Error && depth < 4; cause = cause.cause, depth++) {
    if (cause.name === 'TimeoutError') return true
  }
  return false
}

/** One piece of background work toward a peer. */
export interface Task {
  /** What it does, for the logs ("late replication", "delete"). */
  what: string
  run(): Promise<void>
}

interface Retry {
  conn: Connection
  timer: NodeJS.Timeout
  due: Promise<void>
  fire: () => void
  awaited: boolean
  tasks: Task[]
}

/** The background work of the server, per peer. */
export class Background {
  readonly #log: Logger
  readonly #running: () => boolean
  readonly #current: (conn: Connection) => boolean
  readonly #onBehind: (event: BehindEvent) => void
  readonly #queues = new Map<string, Promise<void>>()
  /** Peers that fell behind while connected: when their failed tasks run again. */
  readonly #retries = new Map<string, Retry>()
  /** Retries of a peer that failed in a row, for the backoff. */
  readonly #attempts = new Map<string, number>()

  /**
   * `running`: whether the server still runs background work; `current`: whether a connection is still the
   * one in use for its peer; `onBehind`: a task failed and runs again later.
   */
  constructor(options: { log: Logger; running: () => boolean; current: (conn: Connection) => boolean; onBehind: (event: BehindEvent) => void }) {
    this.#log = options.log
    this.#running = options.running
    this.#current = options.current
    this.#onBehind = options.onBehind
  }

  /** Runs `task` for one peer after the work queued before it; a failure that may pass runs it again later. */
  enqueue(conn: Connection, task: Task): void {
    this.#enqueue(conn, task, false)
  }

  /** `retried`: a retry, whose success starts the peer's backoff afresh. */
  #enqueue(conn: Connection, task: Task, retried: boolean): void {
    const nodeId = conn.remoteNodeId
    const previous = this.#queues.get(nodeId) ?? Promise.resolve()
    const run = previous
      .then(async () => {
        if (!conn.open || !this.#running()) return
        await task.run()
        if (retried) this.succeeded(nodeId)
      })
      .catch((err: unknown) => {
        if (!this.#running()) return
        this.#log.warn({ peer: nodeId, err: messageOf(err) }, `${task.what} failed`)
        this.retryLater(conn, err, task)
      })
      .finally(() => {
        if (this.#queues.get(nodeId) === run) this.#queues.delete(nodeId)
      })
    this.#queues.set(nodeId, run)
  }

  /** Runs `task` again later, when `err` may pass and the connection stays open (see {@link BehindEvent}). */
  retryLater(conn: Connection, err: unknown, task: Task): void {
    const nodeId = conn.remoteNodeId
    if (!mayPass(err) || !conn.open || !this.#running()) return
    const pending = this.#retries.get(nodeId)
    if (pending !== undefined) {
      if (pending.conn === conn && !pending.tasks.includes(task)) pending.tasks.push(task)
      return
    }
    const attempt = this.#attempts.get(nodeId) ?? 0
    this.#attempts.set(nodeId, attempt + 1)
    const retryIn = Math.min(RETRY_FIRST_MS * 2 ** attempt, RETRY_MAX_MS)
    let fire!: () => void
    const due = new Promise<void>((resolve) => (fire = resolve))
    const retry: Retry = { conn, timer: setTimeout(() => {
      this.#retries.delete(nodeId)
      if (conn.open && this.#running() && this.#current(conn)) for (const t of retry.tasks) this.#enqueue(conn, t, true)
      fire()
    }, retryIn), due, fire, awaited: attempt < RETRY_AWAITED, tasks: [task] }
    retry.timer.unref()
    this.#retries.set(nodeId, retry)
    this.#log.info({ peer: nodeId, what: task.what, retryIn, err: messageOf(err) }, 'peer fell behind; trying again later')
    this.#onBehind({ nodeId, retryIn, message: messageOf(err) })
  }

  /** The peer's work succeeded as a whole: its next failure starts the backoff afresh. */
  succeeded(nodeId: string): void {
    this.#attempts.delete(nodeId)
  }

  /** Forgets the retries due for a peer (only if they are due on `conn`, when given), releasing whoever waits for them. */
  drop(nodeId: string, conn?: Connection): void {
    const retry = this.#retries.get(nodeId)
    if (retry === undefined || (conn !== undefined && retry.conn !== conn)) return
    clearTimeout(retry.timer)
    this.#retries.delete(nodeId)
    retry.fire()
  }

  /** Resolves once every queue is empty and the first retries of each peer have run. */
  async waitForSync(signal?: AbortSignal): Promise<void> {
    for (;;) {
      throwIfAborted(signal)
      const pending = [...this.#queues.values(), ...[...this.#retries.values()].filter((r) => r.awaited).map((r) => r.due)]
      if (pending.length === 0) return
      await raceAbort(Promise.allSettled(pending), signal)
    }
  }

  /** Drops every retry and waits for the queued work (which sees `running()` false and stops). */
  async close(): Promise<void> {
    for (const nodeId of [...this.#retries.keys()]) this.drop(nodeId)
    await Promise.allSettled([...this.#queues.values()])
  }
}
