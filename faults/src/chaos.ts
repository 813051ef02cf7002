// The fault schedule of a chaos phase: at random moments (drawn from the run's seed), kill -9 a
// node and restart it on the same data directory, inject a network fault on a link, partition a
// node from the others, or fill the disk of the tmpfs node. Every fault is undone by the end
// of the phase: settle() cuts the waits short, restarts, heals and frees.
import { setTimeout as delay } from 'node:timers/promises'
import type { Cluster } from './cluster.js'
import type { Direction, NetFault } from './proxy.js'
import type { Report } from './report.js'
import type { Rng } from './rng.js'
import type { Workload } from './workload.js'

export interface ChaosOptions {
  /** Mean time between two faults. */
  meanGapMs: number
  /** Longest stall of a connection (beyond the muxer's 30 s dead-peer timeout, it is cut by the nodes). */
  maxStallMs: number
  /** How long a partition lasts, at most. */
  maxPartitionMs: number
  /** How long a node stays down after a kill, at most. */
  maxDownMs: number
  /** How long the disk stays full, at most. */
  maxDiskFullMs: number
}

const KiB = 1024
const MiB = 1024 * KiB

type FaultKind = 'kill' | 'net' | 'partition' | 'diskfull'

export class Chaos {
  readonly #tasks = new Set<Promise<void>>()
  #settling = new AbortController()
  #partitioned: number | undefined
  #diskFull = false
  readonly #down = new Set<number>()

  constructor(
    readonly cluster: Cluster,
    readonly workload: Workload,
    readonly rng: Rng,
    readonly report: Report,
    readonly options: ChaosOptions,
    /** Runs while a killed node is down, before its restart (its disk is still). */
    readonly afterKill: (node: number) => Promise<void> = () => Promise.resolve(),
  ) {}

  /** Injects faults for `durationMs`. */
  async run(durationMs: number): Promise<void> {
    this.#settling = new AbortController()
    const end = Date.now() + durationMs
    for (;;) {
      const gap = -Math.log(1 - this.rng.next()) * this.options.meanGapMs
      const left = end - Date.now()
      if (gap >= left) {
        await delay(Math.max(0, left))
        return
      }
      await delay(gap)
      const kind = this.rng.weighted<FaultKind>([
        ['kill', 3],
        ['net', 6],
        ['partition', 1.2],
        ['diskfull', this.cluster.canFillDisk ? 1.2 : 0],
      ])
      this.#track(this.#inject(kind))
    }
  }

  #track(p: Promise<void>): void {
    const t = p.catch((err: unknown) => this.report.violation('runner', `a fault task failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)).finally(() => this.#tasks.delete(t))
    this.#tasks.add(t)
  }

  /** Waits `ms`, or less once the phase is settling. */
  async #hold(ms: number): Promise<void> {
    try {
      await delay(ms, undefined, { signal: this.#settling.signal })
    } catch {
      // settling: undo now
    }
  }

  async #inject(kind: FaultKind): Promise<void> {
    const rng = this.rng
    const n = this.cluster.slots.length
    if (kind === 'kill') {
      // Half the time aimed at a store in flight: its owner, or one of the peers receiving it.
      const aimed = rng.chance(0.5)
      const wait = rng.int(0, 800)
      const downFor = rng.int(50, this.options.maxDownMs)
      const pickVictim = rng.next()
      const peerOffset = rng.int(1, n - 1)
      let victim = Math.floor(pickVictim * n)
      if (aimed) {
        const stores = [...this.workload.storesInFlight.values()].sort((a, b) => b.size - a.size)
        const target = stores[0]
        if (target !== undefined) victim = pickVictim < 0.5 ? target.node : (target.node + peerOffset) % n
      }
      if (this.#down.has(victim) || this.#down.size >= n - 1) return
      this.#down.add(victim)
      try {
        await delay(wait)
        if (!this.cluster.slot(victim).up) return
        this.report.kills++
        await this.cluster.kill(victim)
        await this.afterKill(victim)
        await this.#hold(downFor)
        await this.cluster.restart(victim)
      } finally {
        this.#down.delete(victim)
      }
      return
    }
    if (kind === 'net') {
      const link = rng.pick(this.cluster.links)
      const direction: Direction = rng.chance(0.5) ? 'up' : 'down'
      const afterBytes = rng.chance(0.5) ? rng.int(0, 64 * KiB) : rng.int(64 * KiB, 4 * MiB)
      const fault: NetFault = rng.weighted<NetFault>([
        [{ kind: 'latency', ms: rng.int(1, 300), forMs: rng.int(1000, 10_000) }, 3],
        [{ kind: 'reset', afterBytes, direction }, 3],
        [{ kind: 'stall', forMs: rng.int(200, this.options.maxStallMs) }, 2],
        [{ kind: 'flip', afterBytes, bit: rng.int(0, 7), direction }, 3],
        [{ kind: 'truncate', afterBytes, direction }, 2],
      ])
      this.report.log(`net fault on ${link.proxy.name}: ${JSON.stringify(fault)}`)
      link.proxy.inject(fault)
      return
    }
    if (kind === 'partition') {
      const node = rng.int(0, n - 1)
      const forMs = rng.int(1000, this.options.maxPartitionMs)
      if (this.#partitioned !== undefined || this.cluster.slot(node).gone) return
      this.#partitioned = node
      this.report.partitions++
      this.report.log(`partition: n${node} cut off for ${forMs} ms`)
      for (const l of this.cluster.linksOf(node)) l.proxy.cut()
      await this.#hold(forMs)
      for (const l of this.cluster.linksOf(node)) l.proxy.heal()
      this.#partitioned = undefined
      this.report.log(`partition of n${node} healed`)
      return
    }
    const slack = rng.int(0, 2 * MiB)
    const forMs = rng.int(1000, this.options.maxDiskFullMs)
    if (this.#diskFull) return
    this.#diskFull = true
    this.report.extra.diskFull++
    await this.cluster.fillDisk(slack)
    await this.#hold(forMs)
    await this.cluster.freeDisk()
    this.#diskFull = false
  }

  /** Undoes every fault: heals, frees, restarts, and waits for all of it. */
  async settle(): Promise<void> {
    this.#settling.abort()
    while (this.#tasks.size > 0) await Promise.all([...this.#tasks])
    for (const l of this.cluster.links) {
      l.proxy.calm()
      l.proxy.heal()
    }
    await this.cluster.freeDisk()
    for (const s of this.cluster.live) if (!s.up) await this.cluster.restart(s.index)
  }
}
