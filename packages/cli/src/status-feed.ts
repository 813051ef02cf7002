// The live status behind the console's `GET /v1/events`: computed once for every watcher, only
// while someone watches, at once when a peer comes or goes, and otherwise at an interval that grows
// with what one computation costs (the replica health walks every object).
import type { Server } from '@dcas/server'
import type { NodeStatus } from './status.js'

/** A source of status updates shared by every watcher. */
export interface StatusFeed {
  /** Calls `listener` with each new status (the first as soon as it is computed); returns the unsubscribe. */
  subscribe(listener: (status: NodeStatus) => void): () => void
  /** Watchers now. */
  readonly watchers: number
  /** Stops computing. */
  close(): void
}

/** Options of {@link createStatusFeed}. */
export interface StatusFeedOptions {
  server: Server
  status: () => Promise<NodeStatus>
  /** Shortest time between two computations, in ms (default 2000). */
  minInterval?: number
  /** Longest (default 60 000). */
  maxInterval?: number
  /** Called when computing the status fails (the feed goes on). */
  onError?: (err: unknown) => void
}

// Peers coming, going or falling behind show at once; heal counts wait for the next round.
const EVENTS = ['peer:connect', 'peer:disconnect', 'synced', 'peer:behind'] as const
// Told at every failed dial of every unreachable member: shown within minInterval, not at once each time.
const PACED_EVENTS = ['dial:error'] as const

/** Creates the feed; it computes nothing until the first watcher subscribes. */
export function createStatusFeed(options: StatusFeedOptions): StatusFeed {
  const { server } = options
  const minInterval = options.minInterval ?? 2000
  const maxInterval = options.maxInterval ?? 60_000
  const listeners = new Set<(status: NodeStatus) => void>()
  let latest: NodeStatus | undefined
  let timer: NodeJS.Timeout | undefined
  let running = false
  let again = false
  let closed = false
  /** When the last computation began, and when the next is due (performance.now()). */
  let lastStarted = -Infinity
  let due = Infinity

  const schedule = (ms: number): void => {
    clearTimeout(timer)
    due = Infinity
    if (listeners.size > 0 && !closed) {
      timer = setTimeout(refresh, ms).unref()
      due = performance.now() + ms
    }
  }
  // One computation at a time; a request during one runs right after it.
  const refresh = (): void => {
    if (running) {
      again = true
      return
    }
    if (listeners.size === 0 || closed) return
    running = true
    const started = performance.now()
    lastStarted = started
    options
      .status()
      .then(
        (status) => {
          latest = status
          for (const listener of listeners) listener(status)
        },
        (err: unknown) => options.onError?.(err),
      )
      .finally(() => {
        running = false
        const took = performance.now() - started
        if (again) {
          again = false
          schedule(0)
        } else schedule(Math.min(maxInterval, Math.max(minInterval, took * 10)))
      })
  }
  const onEvent = (): void => {
    if (listeners.size > 0) schedule(0)
  }
  const onPacedEvent = (): void => {
    if (listeners.size === 0) return
    const now = performance.now()
    const at = Math.max(now, lastStarted + minInterval)
    if (at < due) schedule(at - now)
  }
  for (const event of EVENTS) server.on(event, onEvent)
  for (const event of PACED_EVENTS) server.on(event, onPacedEvent)

  return {
    subscribe(listener) {
      listeners.add(listener)
      if (latest !== undefined) listener(latest)
      if (listeners.size === 1) schedule(0)
      return () => {
        listeners.delete(listener)
        if (listeners.size === 0) {
          clearTimeout(timer)
          latest = undefined
        }
      }
    },
    get watchers() {
      return listeners.size
    },
    close() {
      closed = true
      clearTimeout(timer)
      listeners.clear()
      for (const event of EVENTS) server.off(event, onEvent)
      for (const event of PACED_EVENTS) server.off(event, onPacedEvent)
    },
  }
}
