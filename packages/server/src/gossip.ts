// Gossip: how peer records travel. On each new connection both sides send every record they know;
// a record newer than the one kept is passed on to the other connected peers; this node's own record,
// signed anew on each heartbeat, goes to every connected peer. One request op, `members.push`,
// served beside the holder's requests; what a peer can make this node do is bounded here.
import type { Connection } from '@dcas/p2p'
import { messageOf, PeerError } from './errors.js'
import type { Logger } from './logger.js'
import type { Membership } from './membership.js'
import type { PeerRecord } from './peer-record.js'
import { exchange } from './client.js'
import { checkResponse, uint, type Exchange, type Header } from './wire.js'

/** Most records in one `members.push`. */
export const MAX_PUSH_RECORDS = 64
/** Largest body of one `members.push`. */
const MAX_PUSH_BYTES = 256 * 1024
/** Records one peer may send per window before its pushes are refused for the rest of it. */
const PEER_RECORD_BUDGET = 2048
const BUDGET_WINDOW_MS = 10_000

/** What gossip needs of the rest of the server. */
export interface GossipOptions {
  membership: Membership
  /** The open connections to send to. */
  connections: () => Connection[]
  /** The request timeout's signal. */
  signal: () => AbortSignal
  log: Logger
}

/** Sends and receives peer records. */
export class Gossip {
  readonly #o: GossipOptions
  /** Per peer: records waiting to go, by node id (the newest only), and whether a push is on its way. */
  readonly #outbox = new Map<string, { conn: Connection; pending: Map<string, PeerRecord>; sending: boolean }>()
  readonly #budgets = new Map<string, { left: number; until: number }>()

  constructor(options: GossipOptions) {
    this.#o = options
  }

  /** A new connection: it gets every record this node knows, in one push at least (an empty one introduces a node without a record). */
  connected(conn: Connection): void {
    const records = this.#o.membership.records()
    if (records.some((r) => r.nodeId !== conn.remoteNodeId)) this.#send(conn, records)
    else void pushRecords(conn, [], this.#o.signal()).catch((err: unknown) => this.#o.log.debug({ peer: conn.remoteNodeId, err: messageOf(err) }, 'introducing this node failed'))
  }

  /** This node signed its record anew: every connected peer gets it. */
  signed(record: PeerRecord): void {
    for (const conn of this.#o.connections()) this.#send(conn, [record])
  }

  /** Sends records to every connected peer but `except` (the one they came from). */
  relay(records: PeerRecord[], except?: string): void {
    if (records.length === 0) return
    for (const conn of this.#o.connections()) if (conn.remoteNodeId !== except) this.#send(conn, records)
  }

  /** Sends records to one peer directly (a drain tells the owners whose replicas it holds). */
  async tell(conn: Connection, records: PeerRecord[]): Promise<void> {
    for (let at = 0; at < records.length; at += MAX_PUSH_RECORDS) await pushRecords(conn, records.slice(at, at + MAX_PUSH_RECORDS), this.#o.signal())
  }

  /** Serves `members.push` from `peer`: the records are checked, verified, kept when newer, and passed on. */
  async serve(peer: string, h: Header, ex: Exchange): Promise<void> {
    const count = uint(h, 'count', MAX_PUSH_RECORDS)
    const size = uint(h, 'bodySize', MAX_PUSH_BYTES)
    const body = await ex.readBody(size)
    if (!this.#spend(peer, count)) {
      await ex.send({ ok: false, code: 'ERR_BUSY', message: 'too many peer records from this peer; try later' })
      return
    }
    let values: unknown
    try {
      values = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.length).toString('utf8'))
    } catch (err) {
      throw new PeerError('members.push body is not JSON', undefined, { cause: err })
    }
    if (!Array.isArray(values) || values.length !== count) throw new PeerError(`members.push must carry ${count} records`)
    const accepted = await this.#o.membership.merge(values, peer)
    this.relay(accepted, peer)
    await ex.send({ ok: true, accepted: accepted.length })
  }

  /** Whether `peer` may still send `count` records in this window. */
  #spend(peer: string, count: number): boolean {
    const now = Date.now()
    let budget = this.#budgets.get(peer)
    if (budget === undefined || budget.until <= now) {
      if (this.#budgets.size > 4096) this.#budgets.clear()
      budget = { left: PEER_RECORD_BUDGET, until: now + BUDGET_WINDOW_MS }
      this.#budgets.set(peer, budget)
    }
    budget.left -= count
    return budget.left >= 0
  }

  /** Queues records for one peer; one push at a time per peer, the newest record of each node only. */
  #send(conn: Connection, records: PeerRecord[]): void {
    if (records.length === 0 || !conn.open) return
    let box = this.#outbox.get(conn.remoteNodeId)
    if (box === undefined || box.conn !== conn) {
      box = { conn, pending: new Map(), sending: false }
      this.#outbox.set(conn.remoteNodeId, box)
    }
    for (const r of records) if (r.nodeId !== conn.remoteNodeId) box.pending.set(r.nodeId, r)
    if (!box.sending) void this.#flush(box)
  }

  async #flush(box: { conn: Connection; pending: Map<string, PeerRecord>; sending: boolean }): Promise<void> {
    box.sending = true
    try {
      while (box.pending.size > 0 && box.conn.open) {
        const batch = [...box.pending.values()].slice(0, MAX_PUSH_RECORDS)
        for (const r of batch) box.pending.delete(r.nodeId)
        await pushRecords(box.conn, batch, this.#o.signal())
      }
    } catch (err) {
      // The connection is closing, or the peer is busy: it gets everything again when it next connects.
      this.#o.log.debug({ peer: box.conn.remoteNodeId, err: messageOf(err) }, 'sending peer records failed')
      box.pending.clear()
    } finally {
      box.sending = false
      if (this.#outbox.get(box.conn.remoteNodeId) === box && box.pending.size === 0) this.#outbox.delete(box.conn.remoteNodeId)
    }
  }
}

/** Sends up to {@link MAX_PUSH_RECORDS} records to a peer; resolves to how many it took as new. */
export async function pushRecords(conn: Connection, records: PeerRecord[], signal: AbortSignal): Promise<number> {
  const body = Buffer.from(JSON.stringify(records), 'utf8')
  return exchange(conn, { op: 'members.push', count: records.length, bodySize: body.length }, signal, async (ex) => {
    await ex.sendBytes(body, signal)
    await ex.end()
    const res = checkResponse(await ex.requireHeader())
    await ex.expectEnd()
    return uint(res, 'accepted', records.length)
  })
}
