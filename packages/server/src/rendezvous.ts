// Weighted rendezvous hashing: which R nodes hold a ref, a pure function of the ref id and the
// candidate nodes (their ids, declared capacities and zones), so that every node computes the same
// answer and a change of membership moves only the refs whose top R changed.
//
// Each node scores each ref as weight / -ln(u), u uniform in (0, 1) from a hash of (refId, nodeId):
// the highest score wins, and a node wins a share of refs proportional to its weight. Copies go to
// distinct zones while there are zones enough: the best node of each of the R best zones.

/** What rendezvous hashing needs to know of a node. */
export interface WeightedNode {
  nodeId: string
  /** A failure-domain label: copies of one ref go to distinct zones while there are enough. None: a zone of its own. */
  zone?: string | undefined
  /** Bytes the node offers to hold for others; 0 holds nothing; none: the median of those declared. */
  capacity?: number | undefined
}

/**
 * A node's weight is capped at this many times the median declared capacity: a member that declares a huge
 * capacity gets at most this weight, whatever it claims.
 */
export const MAX_WEIGHT_RATIO = 4

/**
 * Relative weights of nodes from their declared capacities: a capacity over {@link MAX_WEIGHT_RATIO} times the
 * median of the declared ones counts as that much; an undeclared one as the median; 0 as nothing. All weights
 * are 1 when nobody declares one. Only capped nodes depend on the median, so a node that joins or leaves does
 * not change the others' weights.
 */
export function weightsOf(capacities: ReadonlyArray<number | undefined>): number[] {
  const declared = capacities.filter((c): c is number => c !== undefined && c > 0).sort((a, b) => a - b)
  if (declared.length === 0) return capacities.map((c) => (c === 0 ? 0 : 1))
  const mid = declared.length >> 1
  const median = declared.length % 2 === 1 ? declared[mid]! : (declared[mid - 1]! + declared[mid]!) / 2
  const cap = MAX_WEIGHT_RATIO * median
  return capacities.map((c) => (c === undefined ? 1 : Math.min(c, cap) / median))
}

// MurmurHash3 (x86, 32-bit) rounds over the first 64 bits of the ref id and of the node id.
const C1 = 0xcc9e2d51
const C2 = 0x1b873593
const SEED = 0x6463_6173 // "dcas"

function round(h: number, k: number): number {
  k = Math.imul(k, C1)
  k = (k << 15) | (k >>> 17)
  k = Math.imul(k, C2)
  h ^= k
  h = (h << 13) | (h >>> 19)
  return (Math.imul(h, 5) + 0xe6546b64) | 0
}

function finish(h: number): number {
  h ^= 16
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** The first 64 bits of a hex id as two 32-bit words. */
function words(id: string): [number, number] {
  const a = Number.parseInt(id.slice(0, 8), 16)
  const b = Number.parseInt(id.slice(8, 16), 16)
  if (!Number.isFinite(a) || !Number.isFinite(b) || id.length < 16) throw new TypeError(`not a hex id: ${JSON.stringify(id.slice(0, 20))}`)
  return [a | 0, b | 0]
}

const TWO_POW_MINUS_32 = 2 ** -32

/**
 * A set of nodes compiled for placing many refs: ids in order, weights, zones as small integers and the hash
 * words of each id. {@link RendezvousTable.place} is then a pass over the nodes per ref, no allocation.
 */
export class RendezvousTable {
  /** The node ids, sorted (ties between equal scores go to the first). */
  readonly ids: readonly string[]
  readonly weights: Float64Array
  readonly #zone: Int32Array
  readonly #zones: number
  readonly #n0: Int32Array
  readonly #n1: Int32Array
  readonly #scores: Float64Array
  readonly #best: Float64Array
  readonly #bestAt: Int32Array

  constructor(nodes: readonly WeightedNode[]) {
    const sorted = [...nodes].sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0))
    const n = sorted.length
    this.ids = sorted.map((m) => m.nodeId)
    this.weights = Float64Array.from(weightsOf(sorted.map((m) => m.capacity)))
    this.#zone = new Int32Array(n)
    this.#n0 = new Int32Array(n)
    this.#n1 = new Int32Array(n)
    const zoneIds = new Map<string, number>()
    sorted.forEach((m, i) => {
      const label = m.zone === undefined ? `\u0000${m.nodeId}` : `z:${m.zone}`
      let z = zoneIds.get(label)
      if (z === undefined) zoneIds.set(label, (z = zoneIds.size))
      this.#zone[i] = z
      ;[this.#n0[i], this.#n1[i]] = words(m.nodeId)
    })
    this.#zones = zoneIds.size
    this.#scores = new Float64Array(n)
    this.#best = new Float64Array(this.#zones)
    this.#bestAt = new Int32Array(this.#zones)
  }

  /** How many nodes. */
  get size(): number {
    return this.ids.length
  }

  /**
   * The indices (into {@link RendezvousTable.ids}) of the `replicas` nodes that hold `refId`, best first: the
   * best node of each of the best zones, then, when zones run out, the best of the rest. Fewer when fewer
   * nodes have a weight.
   */
  place(refId: string, replicas: number): number[] {
    const n = this.ids.length
    if (n === 0 || replicas <= 0) return []
    const [r0, r1] = words(refId)
    const h = round(round(SEED, r0), r1)
    const scores = this.#scores
    const best = this.#best.fill(-1)
    const bestAt = this.#bestAt
    for (let i = 0; i < n; i++) {
      const w = this.weights[i]!
      if (w <= 0) {
        scores[i] = -1
        continue
      }
      const u = (finish(round(round(h, this.#n0[i]!), this.#n1[i]!)) + 0.5) * TWO_POW_MINUS_32
      const s = w / -Math.log(u)
      scores[i] = s
      const z = this.#zone[i]!
      if (s > best[z]!) {
        best[z] = s
        bestAt[z] = i
      }
    }
    const out: number[] = []
    // The best zones, by their best node.
    for (let pick = 0; pick < replicas; pick++) {
      let at = -1
      for (let z = 0; z < this.#zones; z++) if (best[z]! >= 0 && (at < 0 || best[z]! > best[at]!)) at = z
      if (at < 0) break
      out.push(bestAt[at]!)
      scores[bestAt[at]!] = -1
      best[at] = -1
    }
    // Zones ran out: the best of the nodes left.
    while (out.length < replicas) {
      let at = -1
      for (let i = 0; i < n; i++) if (scores[i]! >= 0 && (at < 0 || scores[i]! > scores[at]!)) at = i
      if (at < 0) break
      out.push(at)
      scores[at] = -1
    }
    return out
  }

  /** The node ids that hold `refId`, best first. */
  holders(refId: string, replicas: number): string[] {
    return this.place(refId, replicas).map((i) => this.ids[i]!)
  }
}
