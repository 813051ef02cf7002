// The TCP fault proxy: one forwarder per link (a node dialling another), placed between them.
// It adds latency, resets a connection after N bytes, stalls it, flips one bit, truncates it
// (a clean FIN after N bytes), and cuts the link for partitions. Nodes dial each other's proxy,
// so a node restarted on a new port stays reachable at the same address (setTarget), and every
// byte that crosses a link is scanned for the canaries (nothing is kept: a rolling tail per
// direction catches a canary split across two reads).
import { connect, createServer, type Server, type Socket } from 'node:net'

/** A fault on one link: applies to its live connection(s), else to the next one. */
export type NetFault =
  | { kind: 'latency'; ms: number; forMs: number }
  | { kind: 'reset'; afterBytes: number; direction: Direction }
  | { kind: 'stall'; forMs: number }
  | { kind: 'flip'; afterBytes: number; bit: number; direction: Direction }
  | { kind: 'truncate'; afterBytes: number; direction: Direction }

/** `up`: from the dialler to the listener; `down`: back. */
export type Direction = 'up' | 'down'

/** What a proxy has seen. */
export interface ProxyStats {
  connections: number
  bytesUp: number
  bytesDown: number
  /** Faults that took effect (a reset, flip or truncation whose byte was reached, a latency or stall that began). */
  faults: number
  /** Canary occurrences in the bytes that crossed the link. */
  canaryHits: number
}

const MAX_QUEUED = 4 * 1024 * 1024

/** Finds needles in a byte stream read piece by piece, without keeping it. */
export class StreamScanner {
  #tail: Buffer = Buffer.alloc(0)
  readonly #keep: number
  hits = 0

  constructor(readonly needles: readonly Buffer[]) {
    this.#keep = Math.max(0, ...needles.map((n) => n.length - 1))
  }

  push(piece: Buffer): void {
    if (this.needles.length === 0) return
    const window = this.#tail.length === 0 ? piece : Buffer.concat([this.#tail, piece])
    for (const needle of this.needles) {
      // Matches lying wholly inside the old tail were counted already.
      for (let at = window.indexOf(needle); at !== -1; at = window.indexOf(needle, at + 1)) {
        if (at + needle.length > this.#tail.length) this.hits++
      }
    }
    this.#tail = Buffer.from(window.subarray(Math.max(0, window.length - this.#keep)))
  }
}

interface Armed {
  fault: Extract<NetFault, { afterBytes: number }>
  /** Bytes still to pass before it fires. */
  left: number
}

type Item = { at: number; bytes: Buffer } | { at: number; end: true } | { at: number; action: () => void }

/** One direction of one proxied connection. */
class Pipe {
  readonly #queue: Item[] = []
  #queued = 0
  #timer: NodeJS.Timeout | undefined
  #waitingDrain = false
  #stalledUntil = 0
  #stopped = false
  #halted = false
  armed: Armed[] = []
  latencyMs = 0

  constructor(
    readonly from: Socket,
    readonly to: Socket,
    readonly direction: Direction,
    readonly conn: ProxiedConnection,
  ) {
    from.on('data', (bytes: Buffer) => this.#onData(bytes))
    from.on('end', () => this.#push({ at: this.#due(), end: true }))
  }

  /** Forwards nothing (and reads nothing) for `ms`. */
  stall(ms: number): void {
    this.#stalledUntil = Math.max(this.#stalledUntil, Date.now() + ms)
    this.from.pause()
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#pump()
  }

  #due(): number {
    return Date.now() + this.latencyMs
  }

  #onData(bytes: Buffer): void {
    if (this.#stopped) return
    this.conn.proxy.count(this.direction, bytes)
    let piece = bytes
    for (const armed of [...this.armed]) {
      if (armed.left >= piece.length) {
        armed.left -= piece.length
        continue
      }
      const at = armed.left
      this.armed = this.armed.filter((a) => a !== armed)
      this.conn.proxy.applied()
      const { fault } = armed
      if (fault.kind === 'flip') {
        piece = Buffer.from(piece)
        piece[at]! ^= 1 << fault.bit
        continue
      }
      // reset or truncate: forward the bytes before the fault's, then act; nothing after it passes.
      this.#stopped = true
      this.from.pause()
      if (at > 0) this.#push({ at: this.#due(), bytes: piece.subarray(0, at) })
      this.#push({ at: this.#due(), action: fault.kind === 'reset' ? () => this.conn.reset() : () => this.conn.truncate() })
      return
    }
    this.#push({ at: this.#due(), bytes: piece })
  }

  #push(item: Item): void {
    this.#queue.push(item)
    if ('bytes' in item) {
      this.#queued += item.bytes.length
      if (this.#queued > MAX_QUEUED) this.from.pause()
    }
    this.#pump()
  }

  #pump(): void {
    if (this.#timer !== undefined || this.#waitingDrain || this.#halted || this.conn.closing) return
    const now = Date.now()
    if (this.#stalledUntil > now) {
      this.#timer = setTimeout(() => this.#wake(), this.#stalledUntil - now)
      return
    }
    for (let head = this.#queue[0]; head !== undefined; head = this.#queue[0]) {
      if (head.at > now) {
        this.#timer = setTimeout(() => this.#wake(), head.at - now)
        return
      }
      this.#queue.shift()
      if ('action' in head) {
        // Nothing after the fault passes. Act once what went before has reached the socket
        // (a reset in the same tick as a write goes out as a FIN).
        this.#halted = true
        const act = (): void => void setTimeout(head.action, 0)
        if (this.to.writableLength > 0) this.to.once('drain', act)
        else act()
        return
      }
      if ('end' in head) return void this.to.end()
      this.#queued -= head.bytes.length
      if (!this.to.write(head.bytes)) {
        this.#waitingDrain = true
        this.to.once('drain', () => {
          this.#waitingDrain = false
          this.#pump()
        })
        return
      }
    }
    if (!this.#stopped && this.#queued <= MAX_QUEUED) this.from.resume()
  }

  #wake(): void {
    this.#timer = undefined
    this.#pump()
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }
}

/** One accepted connection and its upstream socket. */
class ProxiedConnection {
  readonly up: Pipe
  readonly down: Pipe
  closing = false

  constructor(
    readonly proxy: FaultProxy,
    readonly client: Socket,
    readonly server: Socket,
  ) {
    this.up = new Pipe(client, server, 'up', this)
    this.down = new Pipe(server, client, 'down', this)
    for (const s of [client, server]) {
      s.on('error', () => this.reset())
      s.on('close', () => this.destroy())
    }
  }

  /** Neither side has finished: a fault injected now can still land. */
  get live(): boolean {
    return !this.closing && !this.client.readableEnded && !this.server.readableEnded
  }

  pipe(direction: Direction): Pipe {
    return direction === 'up' ? this.up : this.down
  }

  /** Both sides get a TCP RST. */
  reset(): void {
    if (this.closing) return
    this.closing = true
    for (const s of [this.client, this.server]) if (!s.destroyed) s.resetAndDestroy()
  }

  /** Both sides get a clean FIN; whatever else was sent is dropped. */
  truncate(): void {
    if (this.closing) return
    this.closing = true
    for (const s of [this.client, this.server]) {
      s.pause()
      s.end()
      setTimeout(() => s.destroy(), 2_000).unref()
    }
  }

  destroy(): void {
    this.closing = true
    this.up.stop()
    this.down.stop()
    this.client.destroy()
    this.server.destroy()
    this.proxy.forget(this)
  }
}

/** A TCP forwarder for one link, with faults on demand. */
export class FaultProxy {
  #server: Server | undefined
  #target: string
  #cut = false
  #latency = { ms: 0, until: 0 }
  #address: string | undefined
  readonly #conns = new Set<ProxiedConnection>()
  /** Faults waiting for the next connection (no connection was open when they were injected). */
  #pending: NetFault[] = []
  readonly #scanners: Record<Direction, StreamScanner>
  readonly stats: ProxyStats = { connections: 0, bytesUp: 0, bytesDown: 0, faults: 0, canaryHits: 0 }

  /**
   * @param name - for messages, e.g. `c->a`
   * @param target - `host:port` of the listener it forwards to
   * @param canaries - byte strings that must never cross the link
   */
  constructor(
    readonly name: string,
    target: string,
    canaries: readonly Buffer[] = [],
  ) {
    this.#target = target
    this.#scanners = { up: new StreamScanner(canaries), down: new StreamScanner(canaries) }
  }

  /** Listens on 127.0.0.1 (any port); resolves to the address nodes dial. */
  async listen(): Promise<string> {
    const server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (client) => this.#accept(client))
    this.#server = server
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({ host: '127.0.0.1', port: 0 }, () => resolve())
    })
    const a = server.address()
    if (a === null || typeof a === 'string') throw new Error('proxy has no address')
    this.#address = `127.0.0.1:${a.port}`
    return this.#address
  }

  get address(): string {
    if (this.#address === undefined) throw new Error('the proxy is not listening')
    return this.#address
  }

  /** Where new connections go (after the listener restarted on another port). */
  setTarget(target: string): void {
    this.#target = target
  }

  get isCut(): boolean {
    return this.#cut
  }


  /** Partition: every open connection is reset and new ones are refused until {@link FaultProxy.heal}. */
  cut(): void {
    this.#cut = true
    for (const c of [...this.#conns]) c.reset()
  }

  heal(): void {
    this.#cut = false
  }

  /** Injects a fault into the open connections, or the next one when none is open. */
  inject(fault: NetFault): void {
    if (fault.kind === 'latency') {
      this.#latency = { ms: fault.ms, until: Date.now() + fault.forMs }
      for (const c of this.#conns) for (const p of [c.up, c.down]) p.latencyMs = fault.ms
      this.applied()
      setTimeout(() => {
        if (Date.now() < this.#latency.until) return
        this.#latency.ms = 0
        for (const c of this.#conns) for (const p of [c.up, c.down]) p.latencyMs = 0
      }, fault.forMs).unref()
      return
    }
    const open = [...this.#conns].filter((c) => c.live)
    if (open.length === 0) {
      this.#pending.push(fault)
      return
    }
    for (const c of open) this.#apply(c, fault)
  }

  /** Drops faults still waiting for a connection and ends any latency. */
  calm(): void {
    this.#pending = []
    this.#latency = { ms: 0, until: 0 }
    for (const c of this.#conns) {
      for (const p of [c.up, c.down]) {
        p.latencyMs = 0
        p.armed = []
      }
    }
  }

  #apply(c: ProxiedConnection, fault: NetFault): void {
    if (fault.kind === 'stall') {
      this.applied()
      c.up.stall(fault.forMs)
      c.down.stall(fault.forMs)
    } else if (fault.kind !== 'latency') {
      c.pipe(fault.direction).armed.push({ fault, left: fault.afterBytes })
    }
  }

  #accept(client: Socket): void {
    if (this.#cut) {
      client.on('error', () => {})
      client.resetAndDestroy()
      return
    }
    this.stats.connections++
    const [host, port] = splitAddress(this.#target)
    const server = connect({ host, port, allowHalfOpen: true })
    server.pause()
    const conn = new ProxiedConnection(this, client, server)
    this.#conns.add(conn)
    const latency = Date.now() < this.#latency.until ? this.#latency.ms : 0
    conn.up.latencyMs = latency
    conn.down.latencyMs = latency
    const pending = this.#pending
    this.#pending = []
    for (const f of pending) this.#apply(conn, f)
    server.once('connect', () => {
      client.resume()
      server.resume()
    })
  }

  /** @internal */
  count(direction: Direction, bytes: Buffer): void {
    if (direction === 'up') this.stats.bytesUp += bytes.length
    else this.stats.bytesDown += bytes.length
    const scanner = this.#scanners[direction]
    scanner.push(bytes)
    this.stats.canaryHits = this.#scanners.up.hits + this.#scanners.down.hits
  }

  /** @internal */
  applied(): void {
    this.stats.faults++
  }

  /** @internal */
  forget(c: ProxiedConnection): void {
    this.#conns.delete(c)
  }

  async close(): Promise<void> {
    for (const c of [...this.#conns]) c.destroy()
    const server = this.#server
    this.#server = undefined
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()))
  }
}

/** `host:port` → [host, port]. */
export function splitAddress(address: string): [string, number] {
  const at = address.lastIndexOf(':')
  const host = address.slice(0, at).replace(/^\[|\]$/g, '')
  return [host, Number(address.slice(at + 1))]
}
