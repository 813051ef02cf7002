// A small seeded random generator (sfc32), so that every decision of a run follows from its seed.
// Each part of a run (a workload lane, the fault schedule, bit rot) draws from its own stream,
// forked by label, so the choices of one part do not shift when another part draws more or less.
import { createHash } from 'node:crypto'

/** Deterministic random numbers from a seed string. */
export class Rng {
  #a: number
  #b: number
  #c: number
  #d: number

  constructor(readonly seed: string) {
    const h = createHash('sha256').update(seed).digest()
    this.#a = h.readUInt32LE(0)
    this.#b = h.readUInt32LE(4)
    this.#c = h.readUInt32LE(8)
    this.#d = h.readUInt32LE(12)
    for (let i = 0; i < 12; i++) this.#u32()
  }

  #u32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0
    this.#d = (this.#d + 1) | 0
    this.#a = this.#b ^ (this.#b >>> 9)
    this.#b = (this.#c + (this.#c << 3)) | 0
    this.#c = (this.#c << 21) | (this.#c >>> 11)
    this.#c = (this.#c + t) | 0
    return t >>> 0
  }

  /** A float in [0, 1). */
  next(): number {
    return this.#u32() / 2 ** 32
  }

  /** An integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1))
  }

  /** `true` with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list')
    return items[Math.floor(this.next() * items.length)]!
  }

  /** `count` distinct elements (fewer if the list is shorter), in random order. */
  sample<T>(items: readonly T[], count: number): T[] {
    const pool = [...items]
    const out: T[] = []
    while (out.length < count && pool.length > 0) out.push(pool.splice(this.int(0, pool.length - 1), 1)[0]!)
    return out
  }

  /** One of `choices`, drawn by weight. */
  weighted<T>(choices: ReadonlyArray<readonly [T, number]>): T {
    const total = choices.reduce((s, [, w]) => s + w, 0)
    let at = this.next() * total
    for (const [value, w] of choices) {
      at -= w
      if (at < 0) return value
    }
    return choices[choices.length - 1]![0]
  }

  /** A short hex string (for data seeds and names). */
  hex(bytes = 6): string {
    let out = ''
    for (let i = 0; i < bytes; i++) out += this.int(0, 255).toString(16).padStart(2, '0')
    return out
  }

  /** An independent stream for one part of the run. */
  fork(label: string): Rng {
    return new Rng(`${this.seed}/${label}`)
  }
}
