// The independent record: what the workload was told, kept apart from anything the nodes say
// about themselves. Each key has one owner and at most one operation in flight, so its state is
// a short list of candidates: the last state an operation confirmed, plus the outcome of every
// later operation that failed without saying whether it took effect (a kill mid-store, a quorum
// error after the local commit, a full disk). A read must match a live candidate; a key whose
// every candidate is live must read back; a key whose every candidate is deleted must stay gone.
import { createHash } from 'node:crypto'
import { dataDigest, generateData } from '@dcas/server/testing'

/** What a store wrote: generated data (size + seed) or a text. */
export type Content = { kind: 'gen'; size: number; seed: string } | { kind: 'text'; text: string }

/** A candidate state of a key. */
export type State = { deleted: true } | { deleted: false; content: Content }

const digests = new Map<string, Promise<string>>()

export function describe(c: Content): string {
  return c.kind === 'gen' ? `gen(${c.size} B, seed ${c.seed})` : `text(${Buffer.byteLength(c.text)} B)`
}

export function sizeOf(c: Content): number {
  return c.kind === 'gen' ? c.size : Buffer.byteLength(c.text)
}

/** SHA-256 of a content (cached: generated data is hashed once). */
export function digestOf(c: Content): Promise<string> {
  if (c.kind === 'text') return Promise.resolve(createHash('sha256').update(c.text).digest('hex'))
  const id = `${c.size}:${c.seed}`
  let d = digests.get(id)
  if (d === undefined) {
    d = dataDigest(c.size, c.seed)
    digests.set(id, d)
    if (digests.size > 5000) digests.delete(digests.keys().next().value!)
  }
  return d
}

/** SHA-256 of bytes [offset, offset + length) of a content. */
export async function rangeDigestOf(c: Content, offset: number, length: number): Promise<string> {
  const hash = createHash('sha256')
  if (c.kind === 'text') return hash.update(Buffer.from(c.text).subarray(offset, offset + length)).digest('hex')
  let at = 0
  for await (const piece of generateData(c.size, c.seed)) {
    const from = Math.max(offset - at, 0)
    const to = Math.min(offset + length - at, piece.length)
    if (from < to) hash.update(piece.subarray(from, to))
    at += piece.length
    if (at >= offset + length) break
  }
  return hash.digest('hex')
}

const sameData = (a: Content, b: Content): boolean => (a.kind === 'gen' && b.kind === 'gen' ? a.seed === b.seed && a.size === b.size : a.kind === 'text' && b.kind === 'text' && a.text === b.text)
const same = (a: State, b: State): boolean => (a.deleted ? b.deleted : !b.deleted && sameData(a.content, b.content))

/** The record of one key. */
export class KeyRecord {
  /** The last confirmed state first, then unconfirmed outcomes. */
  candidates: State[] = [{ deleted: true }]
  /** Every content ever stored under the key (to tell a stale or resurrected read from a corrupt one). */
  readonly history: Content[] = []
  /** Highest version a store confirmed. */
  lastVersion = 0
  /**
   * Highest version a peer acknowledged (a store it holds, a delete it took): all that survives a
   * loss of everything but `identity/` on the owner, so new versions must only go above this then.
   */
  peerVersion = 0
  busy = false
  /** When the last operation on the key started (the workload's clock). */
  seq = 0
  /** The last store that resolved: its version and who acknowledged a durable copy. */
  acked: { seq: number; version: number; replicas: string[] } | undefined

  constructor(
    readonly owner: number,
    readonly key: string,
  ) {}

  get mayBeLive(): boolean {
    return this.candidates.some((c) => !c.deleted)
  }

  get mustBeLive(): boolean {
    return this.candidates.every((c) => !c.deleted)
  }

  get mustBeDeleted(): boolean {
    return this.candidates.every((c) => c.deleted)
  }

  liveContents(): Content[] {
    return this.candidates.flatMap((c) => (c.deleted ? [] : [c.content]))
  }

  /** An operation confirmed this state. */
  confirm(state: State): void {
    this.candidates = [state]
    if (!state.deleted && !this.history.some((h) => sameData(h, state.content))) this.history.push(state.content)
  }

  /** An operation failed without telling whether it took effect. */
  maybe(state: State): void {
    if (!this.candidates.some((c) => same(c, state))) this.candidates.push(state)
    if (!state.deleted && !this.history.some((h) => sameData(h, state.content))) this.history.push(state.content)
  }
}

/** How a read's result compares with the record. */
export type ReadVerdict = { ok: true } | { ok: false; kind: 'corrupt' | 'resurrected'; detail: string }

/** Checks a successful full read (size + sha256) against the record, and narrows the record to what was read. */
export async function judgeRead(rec: KeyRecord, got: { size: number; sha256: string }): Promise<ReadVerdict> {
  for (const c of rec.liveContents()) {
    if (sizeOf(c) === got.size && (await digestOf(c)) === got.sha256) {
      rec.confirm({ deleted: false, content: c })
      return { ok: true }
    }
  }
  let match: Content | undefined
  for (const c of rec.history) if (sizeOf(c) === got.size && (await digestOf(c)) === got.sha256) match = c
  const expected = rec.candidates.map((c) => (c.deleted ? 'deleted' : describe(c.content))).join(' or ')
  if (match !== undefined && rec.mustBeDeleted) return { ok: false, kind: 'resurrected', detail: `read ${describe(match)} of a deleted key (expected ${expected})` }
  if (match !== undefined) return { ok: false, kind: 'corrupt', detail: `read a stale version ${describe(match)} (expected ${expected})` }
  return { ok: false, kind: 'corrupt', detail: `read ${got.size} B with sha256 ${got.sha256.slice(0, 16)}… matching nothing stored (expected ${expected})` }
}

/** Checks a successful range read against every live candidate. */
export async function judgeRangeRead(rec: KeyRecord, offset: number, length: number, got: { size: number; sha256: string }): Promise<ReadVerdict> {
  for (const c of rec.liveContents()) {
    const end = Math.min(sizeOf(c), offset + length)
    const want = Math.max(0, end - offset)
    if (got.size === want && (await rangeDigestOf(c, offset, want)) === got.sha256) return { ok: true }
  }
  const expected = rec.candidates.map((c) => (c.deleted ? 'deleted' : describe(c.content))).join(' or ')
  if (rec.mustBeDeleted) return { ok: false, kind: 'resurrected', detail: `a range read [${offset}, +${length}) of a deleted key returned ${got.size} B` }
  return { ok: false, kind: 'corrupt', detail: `range [${offset}, +${length}) returned ${got.size} B (sha256 ${got.sha256.slice(0, 16)}…) matching no candidate (${expected})` }
}
