// The seeded random workload: per node a few lanes, each running store / read / range read /
// delete / overwrite on its own keys, one operation at a time, recording every outcome in the
// model. A lane's choices come from its own random stream, so they do not depend on timing.
import { setTimeout as delay } from 'node:timers/promises'
import type { NodeHandle } from '@dcas/server/testing'
import type { Cluster } from './cluster.js'
import { describe, digestOf, judgeRangeRead, judgeRead, KeyRecord, sizeOf, type Content } from './model.js'
import type { Report } from './report.js'
import type { Rng } from './rng.js'

const KiB = 1024
const MiB = 1024 * KiB
/** How long a lane waits after a store found too few holders within reach (it failed at once). */
const QUORUM_PAUSE_MS = 250

export interface WorkloadOptions {
  lanesPerNode: number
  keysPerLane: number
  /** Largest object. */
  maxSize: number
  chunkSize: number
  /** Per node: embedded in some of its stored texts and key names; must reach no other node. */
  canaries: string[]
  /** An operation that takes longer is a hang (a finding); the node is then killed and restarted. */
  opTimeoutMs: number
  /** The first this many nodes own keys and run lanes (default: all); the others only hold replicas. */
  owners?: number
}

/** The error a node answered with (or a timeout). */
interface Failure {
  code: string | undefined
  message: string
}

class TimeoutError extends Error {
  readonly code = 'ERR_HANG'
}

/** Rejects with a timeout after `ms`, keeping the original promise's outcome otherwise. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new TimeoutError(`${what} took over ${ms} ms`)), ms)))])
  } finally {
    clearTimeout(timer)
  }
}

const failureOf = (err: unknown): Failure => ({ code: (err as { code?: string }).code, message: err instanceof Error ? err.message : String(err) })

/** Sizes from 0 B to `max`, most small, some around chunk boundaries, a few large. */
export function drawSize(rng: Rng, max: number, chunkSize: number): number {
  const kind = rng.weighted([
    ['zero', 2],
    ['tiny', 20],
    ['small', 25],
    ['boundary', 8],
    ['medium', 25],
    ['large', 12],
    ['huge', 4],
  ] as const)
  const clamp = (n: number): number => Math.max(0, Math.min(max, n))
  switch (kind) {
    case 'zero':
      return 0
    case 'tiny':
      return rng.int(1, 4 * KiB)
    case 'small':
      return rng.int(4 * KiB, 256 * KiB)
    case 'boundary':
      return clamp(rng.int(1, 3) * chunkSize + rng.int(-1, 1))
    case 'medium':
      return clamp(rng.int(256 * KiB, 3 * MiB))
    case 'large':
      return clamp(rng.int(3 * MiB, 16 * MiB))
    case 'huge':
      return clamp(rng.int(16 * MiB, 64 * MiB))
  }
}

/** Key names: plain, path-like, unicode, long, and some carrying the canary. */
function keyPool(node: number, lane: number, count: number, canary: string): string[] {
  const base = `n${node}/l${lane}`
  const keys = Array.from({ length: count }, (_, i) => `${base}/k${i}`)
  keys.push(`${base}/../../etc/passwd`, `${base}/ключ 🔑 ${canary}`, `${base}/${'x'.repeat(900)}`, `${canary}/${base}/secret-name`)
  return keys
}

export class Workload {
  readonly records = new Map<string, KeyRecord>()
  #stopping = false
  #lanes: Array<Promise<void>> = []
  /** Orders operations: each takes the next value when it starts. */
  clock = 0
  /** Stores in flight, for kills timed to land mid-store. */
  readonly storesInFlight = new Map<string, { node: number; size: number }>()

  constructor(
    readonly cluster: Cluster,
    readonly rng: Rng,
    readonly report: Report,
    readonly options: WorkloadOptions,
  ) {
    for (let node = 0; node < this.owners; node++) {
      for (let lane = 0; lane < options.lanesPerNode; lane++) {
        for (const key of keyPool(node, lane, options.keysPerLane, options.canaries[node]!)) this.records.set(key, new KeyRecord(node, key))
      }
    }
  }

  /** Starts every lane; each runs until {@link Workload.stop}. */
  start(): void {
    this.#stopping = false
    for (let node = 0; node < this.owners; node++) {
      for (let lane = 0; lane < this.options.lanesPerNode; lane++) this.#lanes.push(this.#lane(node, lane))
    }
  }

  /** The nodes that own keys. */
  get owners(): number {
    return this.options.owners ?? this.cluster.config.nodes
  }

  /**
   * Placement moved copies (a node lost for good, or one added): a holder may have released a copy it acknowledged,
   * so earlier acknowledgements no longer bind a holder's disk (the owner's still does).
   */
  forgetHolderAcks(): void {
    for (const rec of this.records.values()) if (rec.acked !== undefined) rec.acked = { ...rec.acked, replicas: [] }
  }

  /** Lets each lane finish its operation in flight, then stops. */
  async stop(): Promise<void> {
    this.#stopping = true
    await Promise.all(this.#lanes)
    this.#lanes = []
  }

  #laneRngs = new Map<string, Rng>()

  async #lane(node: number, lane: number): Promise<void> {
    const id = `lane-${node}-${lane}`
    let rng = this.#laneRngs.get(id)
    if (rng === undefined) {
      rng = this.rng.fork(id)
      this.#laneRngs.set(id, rng)
    }
    const keys = [...this.records.values()].filter((r) => r.owner === node && r.key.includes(`n${node}/l${lane}/`))
    const seeds: string[] = []
    while (!this.#stopping) {
      const rec = rng.pick(keys)
      const op = rng.weighted([
        ['store', 40],
        ['text', 5],
        ['read', 30],
        ['range', 10],
        ['delete', 15],
      ] as const)
      // Draw everything now, so the stream does not depend on what the nodes answer.
      const size = drawSize(rng, this.options.maxSize, this.options.chunkSize)
      const seedChoice = rng.weighted([
        ['fresh', 75],
        ['shared', 15],
        ['same', 10],
      ] as const)
      const fresh = `${id}-${rng.hex()}`
      const shared = seeds.length > 0 ? rng.pick(seeds) : fresh
      const offset = rng.next()
      const length = rng.next()
      const text = `${this.options.canaries[node]!} ${rng.hex(4)} `.repeat(rng.int(1, 400))
      const handle = await this.cluster.slot(node).waitUp()
      if (this.#stopping) break
      rec.busy = true
      rec.seq = ++this.clock
      try {
        if (op === 'store' || op === 'text') {
          let content: Content
          if (op === 'text') content = { kind: 'text', text }
          else if (seedChoice === 'same' && rec.liveContents()[0]?.kind === 'gen') content = rec.liveContents()[0]!
          else content = { kind: 'gen', size, seed: seedChoice === 'shared' ? shared : fresh }
          if (content.kind === 'gen' && !seeds.includes(content.seed)) seeds.push(content.seed)
          await this.#store(handle, rec, content)
        } else if (op === 'read') {
          await this.#read(handle, rec)
        } else if (op === 'range') {
          const live = rec.liveContents()[0]
          const total = live === undefined ? 1024 : sizeOf(live)
          const from = Math.floor(offset * (total + 1))
          await this.#rangeRead(handle, rec, from, Math.floor(length * (total - from + 1)))
        } else {
          await this.#delete(handle, rec)
        }
      } finally {
        rec.busy = false
      }
    }
  }

  async #guard<T>(handle: NodeHandle, rec: KeyRecord, what: string, p: Promise<T>): Promise<T> {
    try {
      return await within(p, this.options.opTimeoutMs, `${what} of "${rec.key.slice(0, 40)}" on n${rec.owner}`)
    } catch (err) {
      if (err instanceof TimeoutError) {
        this.report.violation('hang', err.message)
        // Get the lane going again: the node is killed and restarted (not counted as an injected kill).
        const slot = this.cluster.slot(rec.owner)
        if (slot.handle === handle) {
          await this.cluster.kill(rec.owner)
          this.report.extra.recoveries++
          await this.cluster.restart(rec.owner)
        }
      }
      throw err
    }
  }

  async #store(handle: NodeHandle, rec: KeyRecord, content: Content): Promise<void> {
    this.report.ops++
    this.report.extra.stores++
    const flight = `${rec.key}`
    this.storesInFlight.set(flight, { node: rec.owner, size: sizeOf(content) })
    let pause = false
    try {
      const p = content.kind === 'gen' ? handle.store(rec.key, content.size, content.seed) : handle.storeText(rec.key, content.text)
      const result = await this.#guard(handle, rec, 'store', p)
      const sha = await digestOf(content)
      if (result.sha256 !== sha || result.size !== sizeOf(content)) this.report.violation('corrupt', `store of ${rec.key} reported ${result.size} B ${result.sha256.slice(0, 16)}…, not ${describe(content)}`)
      if (result.version <= rec.lastVersion) this.report.violation('version', `store of ${rec.key} got version ${result.version} after ${rec.lastVersion}`)
      rec.lastVersion = Math.max(rec.lastVersion, result.version)
      if (result.replicas.length > 0) rec.peerVersion = Math.max(rec.peerVersion, result.version)
      rec.confirm({ deleted: false, content })
      rec.acked = { seq: rec.seq, version: result.version, replicas: result.replicas }
      this.report.log(`n${rec.owner} store ${rec.key.slice(0, 40)} ${describe(content)} -> v${result.version}, replicas [${result.replicas.map((id) => this.cluster.nameOf(id)).join(' ')}]`)
    } catch (err) {
      const f = failureOf(err)
      this.report.extra.failedOps++
      this.report.failure(f.code)
      rec.maybe({ deleted: false, content })
      this.report.log(`n${rec.owner} store ${rec.key.slice(0, 40)} ${describe(content)} failed: ${f.code} ${f.message.slice(0, 200)}`)
      pause = (err as { details?: { committed?: boolean } }).details?.committed === false
    } finally {
      this.storesInFlight.delete(flight)
    }
    // Too few holders within reach fails at once: the lane pauses rather than spin while they are away.
    if (pause) await delay(QUORUM_PAUSE_MS)
  }

  async #read(handle: NodeHandle, rec: KeyRecord): Promise<void> {
    this.report.ops++
    this.report.extra.reads++
    try {
      const got = await this.#guard(handle, rec, 'read', handle.read(rec.key))
      const verdict = await judgeRead(rec, got)
      if (!verdict.ok) this.report.violation(verdict.kind, `n${rec.owner} read ${rec.key}: ${verdict.detail}`)
    } catch (err) {
      this.#readFailed(rec, failureOf(err), 'read')
    }
  }

  async #rangeRead(handle: NodeHandle, rec: KeyRecord, offset: number, length: number): Promise<void> {
    this.report.ops++
    this.report.extra.reads++
    try {
      const got = await this.#guard(handle, rec, 'range read', handle.read(rec.key, { offset, length }))
      const verdict = await judgeRangeRead(rec, offset, length, got)
      if (!verdict.ok) this.report.violation(verdict.kind, `n${rec.owner} read ${rec.key} [${offset}, +${length}): ${verdict.detail}`)
    } catch (err) {
      this.#readFailed(rec, failureOf(err), 'range read')
    }
  }

  /**
   * `node` lost everything but `identity/`: the versions only it knew went with it (a delete that no
   * peer took leaves no trace, as the server's catch-up sends tombstones only for refs a peer holds),
   * so from now on its keys' versions must only grow above what a peer acknowledged.
   */
  forgetUnsharedVersions(node: number): void {
    for (const rec of this.records.values()) if (rec.owner === node) rec.lastVersion = rec.peerVersion
  }

  #readFailed(rec: KeyRecord, f: Failure, what: string): void {
    if (f.code === 'ERR_NOT_FOUND') {
      // The owner says there is no such key: true only if it may have been deleted.
      if (rec.mustBeLive) this.report.violation('not-found', `n${rec.owner} ${what} ${rec.key}: not found, but it was stored (${rec.liveContents().map(describe).join(' or ')})`)
      else rec.confirm({ deleted: true })
      return
    }
    // A failed read is allowed under faults; it must fail rather than return wrong bytes.
    this.report.extra.failedReads++
    this.report.failure(f.code)
    this.report.log(`n${rec.owner} ${what} ${rec.key.slice(0, 40)} failed: ${f.code} ${f.message.slice(0, 200)}`)
  }

  async #delete(handle: NodeHandle, rec: KeyRecord): Promise<void> {
    this.report.ops++
    this.report.extra.deletes++
    try {
      const result = await this.#guard(handle, rec, 'delete', handle.delete(rec.key))
      rec.confirm({ deleted: true })
      if (result.acknowledged.length > 0) rec.peerVersion = Math.max(rec.peerVersion, rec.lastVersion)
      this.report.log(`n${rec.owner} delete ${rec.key.slice(0, 40)}: ${result.acknowledged.length} acknowledged, ${result.pending.length} pending`)
    } catch (err) {
      const f = failureOf(err)
      if (f.code === 'ERR_NOT_FOUND') {
        if (rec.mustBeLive) this.report.violation('lost', `n${rec.owner} delete ${rec.key}: not found, but it was stored (${rec.liveContents().map(describe).join(' or ')})`)
        rec.confirm({ deleted: true })
        return
      }
      this.report.extra.failedOps++
      this.report.failure(f.code)
      rec.maybe({ deleted: true })
      this.report.log(`n${rec.owner} delete ${rec.key.slice(0, 40)} failed: ${f.code} ${f.message.slice(0, 200)}`)
    }
  }
}
