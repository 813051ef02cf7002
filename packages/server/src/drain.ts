// Draining: a node about to leave the cluster for good says so in its peer record, tells the owners
// of the replicas it holds at once, and waits until they have moved every one of them elsewhere.
import { raceAbort } from './concurrency.js'
import { AbortedError, ClosedError } from './errors.js'
import type { Gossip } from './gossip.js'
import type { Holder } from './holder.js'
import type { Logger } from './logger.js'
import type { Membership } from './membership.js'
import type { Peers } from './peers.js'
import type { DrainOptions, DrainResult } from './types.js'

/** What a drain uses of a started server. */
export interface DrainParts {
  membership: Membership
  gossip: Gossip
  holder: Holder
  peers: Peers
  /** Waiters told when the refs held for other owners change. */
  held: Set<() => void>
}

/** Marks the node leaving and resolves once it holds no replica of another node (`shutdown`: the server closes). */
export async function drainNode({ membership, gossip, holder, peers, held }: DrainParts, options: DrainOptions, shutdown: AbortSignal, log: Logger): Promise<DrainResult> {
  const heldNow = (): number => holder.liveRefs
  const start = heldNow()
  const record = await membership.leave()
  log.info({ held: start }, 'draining: this node is leaving; its replicas move to other nodes')
  // The owners of what it holds hear of it at once (gossip may take a while to reach them).
  if (record !== undefined) {
    await Promise.all(
      [...holder.heldRefs().keys()].map(async (owner) => {
        const conn = await peers.connect(owner, options.signal).catch(() => undefined)
        if (conn !== undefined) await gossip.tell(conn, [record]).catch(() => {})
      }),
    )
  }
  let last = -1
  for (;;) {
    const remaining = heldNow()
    if (remaining !== last) options.onProgress?.(remaining)
    last = remaining
    if (remaining === 0) break
    let wake!: () => void
    const changed = new Promise<void>((resolve) => (wake = resolve))
    held.add(wake)
    try {
      await raceAbort(raceAbort(changed, options.signal), shutdown)
    } catch (err) {
      if (shutdown.aborted) throw new ClosedError()
      throw err instanceof AbortedError ? err : new AbortedError(undefined, { cause: err })
    } finally {
      held.delete(wake)
    }
  }
  log.info({ moved: start }, 'drained: no replica of another node is left here')
  return { held: start }
}
