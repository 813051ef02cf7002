// A hostile peer and unknown clients, built from the wire up: TLS 1.3 with an Ed25519
// certificate and dcas admission driven here message by message from the protocol's pieces
// (`@dcas/p2p/testing/admission`), so a client can prove a wrong secret, none, present no
// certificate, pipeline bytes, or keep the transcript), then either raw bytes or the p2p multiplexer on the admitted socket,
// speaking the replication protocol as a scripted holder that lies in chosen ways (and as an
// owner that stores into the node).
import { createHash, randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { connect as tcpConnect, type Socket } from 'node:net'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { createIdentity, createMuxedConnection, type Connection, type NodeIdentity, type Stream } from '@dcas/p2p'
import {
  confirmation,
  encodeConfirm,
  encodeHello,
  encodeVerdict,
  PROTOCOL_VERSIONS,
  readConfirm,
  readHello,
  sessionIdOf,
  startCpace,
  Status,
  stretchClusterSecret,
  transcriptOf,
} from '@dcas/p2p/testing/admission'
import { splitAddress } from './proxy.js'

// ---- admission -------------------------------------------------------------

const MAGIC = Buffer.from('dcas', 'latin1')

/** Reads exact byte counts off a socket, leaving the rest in its buffer (for the multiplexer). */
function readExactly(socket: Socket, n: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | undefined, data?: Buffer): void => {
      clearTimeout(timer)
      socket.off('readable', onReadable)
      socket.off('close', onClose)
      if (err !== undefined) reject(err)
      else resolve(data!)
    }
    const onReadable = (): void => {
      const chunk = socket.read(n) as Buffer | null
      if (chunk !== null) done(undefined, chunk)
    }
    const onClose = (): void => done(new Error(`closed before ${n} bytes arrived`))
    const timer = setTimeout(() => done(new Error(`no ${n} bytes within ${timeoutMs} ms`)), timeoutMs)
    socket.on('readable', onReadable)
    socket.on('close', onClose)
    onReadable()
  })
}

/** Everything a socket still sends until it closes (or `timeoutMs`), and whether it closed. */
export function drain(socket: Socket, timeoutMs: number): Promise<{ bytes: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const parts: Buffer[] = []
    const finish = (closed: boolean): void => {
      clearTimeout(timer)
      socket.off('data', onData)
      resolve({ bytes: Buffer.concat(parts), closed })
    }
    const onData = (b: Buffer): void => void parts.push(b)
    const timer = setTimeout(() => finish(false), timeoutMs)
    socket.on('data', onData)
    socket.once('close', () => finish(true))
    if (socket.destroyed) finish(true)
    socket.resume()
  })
}

export interface AdmitOptions {
  /** The secret to prove; absent: no proof. */
  secret?: string
  /** Present no certificate at all. */
  noCertificate?: boolean
  /** Bytes sent right after our hello, before any verdict (pipelined application bytes). */
  pipeline?: Buffer
  identity?: NodeIdentity
  /** Our CPace scalar (default random): a stranger that keeps it can test the transcript offline. */
  scalar?: bigint
}

export interface Admitted {
  socket: TLSSocket
  /** The listener's verdict: 0 admitted, 1 unauthorized, 2 no common version. */
  status: number
  identity: NodeIdentity
}

/** What a dialler saw of an admission, for offline tests of a recorded handshake. */
export interface AdmissionRecord {
  /** The TLS session's id (its exported keying material), which CPace binds to. */
  sessionId: Buffer
  /** Our hello and the listener's, as sent. */
  ourHello: Buffer
  theirHello: Buffer
  /** The listener's CPace share and its confirmation tag (none when we sent no share). */
  theirShare: Buffer | undefined
  theirTag: Buffer | undefined
}

/** TLS 1.3 to `address`, then dcas admission (protocol 2, CPace) as the dialler. */
export async function admitTo(address: string, options: AdmitOptions = {}): Promise<Admitted & { record: AdmissionRecord }> {
  const identity = options.identity ?? (await createIdentity())
  const [host, port] = splitAddress(address)
  const socket = tlsConnect({
    host,
    port,
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    rejectUnauthorized: false,
    ...(options.noCertificate === true ? {} : { key: identity.privateKey.export({ type: 'pkcs8', format: 'pem' }), cert: identity.certificate }),
  })
  socket.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error('no TLS handshake within 10 s'))
    }, 10_000)
    socket.once('secureConnect', () => {
      clearTimeout(timer)
      resolve()
    })
    socket.once('close', () => {
      clearTimeout(timer)
      reject(new Error('closed during the TLS handshake'))
    })
  })
  const sessionId = sessionIdOf(socket)
  const cpace = options.secret === undefined ? undefined : startCpace(await stretched(options.secret), sessionId, options.scalar)
  const ourHello = encodeHello({ versions: [...PROTOCOL_VERSIONS], share: cpace?.share })
  socket.write(options.pipeline === undefined ? ourHello : Buffer.concat([ourHello, options.pipeline]))
  // Their hello, our confirmation (only now that we hold their share), theirs, our verdict, theirs.
  const hello = await readHello(socket, AbortSignal.timeout(10_000))
  const theirHello = encodeHello(hello)
  const key = cpace === undefined || hello.share === undefined ? undefined : cpace.sharedKey(hello.share, transcriptOf(ourHello, theirHello))
  socket.write(encodeConfirm(key === undefined ? undefined : confirmation(key, 'outbound')))
  const theirTag = await readConfirm(socket, AbortSignal.timeout(10_000))
  socket.write(encodeVerdict(Status.Ok, PROTOCOL_VERSIONS[PROTOCOL_VERSIONS.length - 1]!))
  const verdict = await readExactly(socket, 8, 10_000)
  if (!verdict.subarray(0, 4).equals(MAGIC) || verdict[4] !== 0x02) throw new Error('the listener sent no dcas verdict')
  return { socket, status: verdict[5]!, identity, record: { sessionId, ourHello, theirHello, theirShare: hello.share, theirTag } }
}

const stretchedSecrets = new Map<string, Promise<Buffer>>()

/** The cluster secret as CPace uses it (scrypt, as the transport does), computed once per secret. */
export function stretched(secret: string): Promise<Buffer> {
  let s = stretchedSecrets.get(secret)
  if (s === undefined) {
    s = stretchClusterSecret(new TextEncoder().encode(secret))
    stretchedSecrets.set(secret, s)
  }
  return s
}

/** A plain TCP client that sends `bytes` (or nothing) and reports what came back before the close. */
export async function rawClient(address: string, bytes: Buffer | undefined, timeoutMs: number): Promise<{ bytes: Buffer; closed: boolean; ms: number }> {
  const [host, port] = splitAddress(address)
  const socket = tcpConnect({ host, port })
  socket.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve())
    socket.once('close', () => reject(new Error('connection refused')))
  })
  const start = Date.now()
  if (bytes !== undefined) socket.write(bytes)
  const out = await drain(socket, timeoutMs)
  socket.destroy()
  return { ...out, ms: Date.now() - start }
}

// ---- the replication protocol, as bytes --------------------------------------

/** A request or response header: u32 BE length, then JSON. */
export function frame(header: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(header))
  const out = Buffer.alloc(4 + json.length)
  out.writeUInt32BE(json.length, 0)
  json.copy(out, 4)
  return out
}

/** The headers of a response, in order (as far as they parse). */
export function parseResponses(bytes: Buffer): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = []
  for (let at = 0; at + 4 <= bytes.length; ) {
    const n = bytes.readUInt32BE(at)
    try {
      out.push(JSON.parse(bytes.subarray(at + 4, at + 4 + n).toString('utf8')) as Record<string, unknown>)
    } catch {
      break
    }
    at += 4 + n
  }
  return out
}

/** The code of a refusal (`no answer` when there was none). */
const answerOf = (h: Record<string, unknown> | undefined): string => (typeof h?.code === 'string' ? h.code : 'no answer')

/** Reads a stream as headers and bodies. */
export class Reader {
  readonly #it: AsyncIterator<Uint8Array>
  #buf = Buffer.alloc(0)
  #ended = false

  constructor(source: AsyncIterable<Uint8Array>) {
    this.#it = source[Symbol.asyncIterator]()
  }

  async #fill(n: number): Promise<boolean> {
    while (this.#buf.length < n) {
      if (this.#ended) return false
      const r = await this.#it.next()
      if (r.done === true) {
        this.#ended = true
        return false
      }
      this.#buf = this.#buf.length === 0 ? Buffer.from(r.value) : Buffer.concat([this.#buf, r.value])
    }
    return true
  }

  async bytes(n: number): Promise<Buffer | undefined> {
    if (!(await this.#fill(n))) return undefined
    const out = this.#buf.subarray(0, n)
    this.#buf = this.#buf.subarray(n)
    return out
  }

  async header(): Promise<Record<string, unknown> | undefined> {
    const len = await this.bytes(4)
    if (len === undefined) return undefined
    const json = await this.bytes(len.readUInt32BE(0))
    if (json === undefined) return undefined
    return JSON.parse(json.toString('utf8')) as Record<string, unknown>
  }

  /** The rest of the stream (bounded by `max`), and whether it ended in a reset rather than cleanly. */
  async rest(max = 64 * 1024 * 1024): Promise<{ bytes: Buffer; reset: boolean }> {
    let reset = false
    try {
      while (!this.#ended && this.#buf.length <= max) {
        const r = await this.#it.next()
        if (r.done === true) this.#ended = true
        else this.#buf = Buffer.concat([this.#buf, r.value])
      }
    } catch {
      reset = true
    }
    const bytes = this.#buf
    this.#buf = Buffer.alloc(0)
    return { bytes, reset }
  }
}

// ---- the hostile peer ------------------------------------------------------------

/** How the hostile holder answers a `blob.get`. */
export type ServeMode =
  | 'honest'
  | 'wrong-bytes'
  | 'other-blob'
  | 'substitute'
  | 'malformed-header'
  | 'huge-header'
  | 'oversized-size'
  | 'short-body'
  | 'long-body'
  | 'silent'
  | 'trickle'
  | 'error'

/**
 * How it answers `ref.list` during catch-up. `forged`: its refs with {@link HostilePeer.overrides} in their
 * place (and added); `endless-tombstones` and `endless-garbage`: full pages of new refIds after the cursor, without
 * end (deletes without a valid proof; live refs whose manifests are random bytes it holds, or blobs it lacks).
 */
export type ListMode =
  | 'honest'
  | 'fake-newer'
  | 'fake-tombstones'
  | 'fake-tombstones-dated'
  | 'malformed'
  | 'backwards'
  | 'huge-page'
  | 'many-stanzas'
  | 'forged'
  | 'endless-tombstones'
  | 'endless-garbage'

/**
 * How it takes the blobs it is sent: keeps them; acknowledges them but keeps nothing (`drop`); keeps them
 * and acknowledges each only after {@link HostilePeer.slowAckMs} (`slow`; on a `ref.store`, reads the next
 * blob only then); refuses them and any ref, as a full holder would (`refuse`).
 */
export type PutMode = 'keep' | 'drop' | 'slow' | 'refuse'

/** How it answers `blob.prove`: with the proof of what it holds, or a made-up one. */
export type ProveMode = 'honest' | 'made-up'

/** A ref as it lists it (and answers `ref.get` with). */
export interface ListedRef {
  refId: string
  version: number
  deleted: boolean
  manifestCipherId?: string
}

/** How it refuses what it is sent when full (`refuse`). */
const REFUSAL = { ok: false, code: 'ERR_QUOTA', message: 'this holder takes nothing more' }

/** Entries of a `ref.list` page (the protocol's most). */
const LIST_PAGE = 256

/**
 * An age file whose header holds `count` well-formed X25519 stanzas (random shares, bad MAC):
 * without a bound, each stanza costs the decryptor an X25519 operation before the MAC is checked.
 */
export function manyStanzaFile(count: number): Buffer {
  const b64 = (n: number): string => randomBytes(n).toString('base64').replace(/=+$/, '')
  const parts = ['age-encryption.org/v1\n']
  for (let i = 0; i < count; i++) parts.push(`-> X25519 ${b64(32)}\n${b64(32)}\n`)
  parts.push(`--- ${b64(32)}\n`)
  return Buffer.concat([Buffer.from(parts.join(''), 'latin1'), randomBytes(16 + 200)])
}

export interface RefSeen {
  refId: string
  version: number
  manifestCipherId: string
}

/** A peer admitted with the cluster secret that holds what it is sent and answers as told. */
export class HostilePeer {
  readonly blobs = new Map<string, Buffer>()
  readonly refs = new Map<string, RefSeen>()
  /** Every ref it recorded (by `ref.put` or at the end of a `ref.store`), in arrival order. */
  readonly refPuts: RefSeen[] = []
  /** Every `blob.get` asked of it. */
  readonly gets: string[] = []
  /** The header of every ref it was sent (a `ref.put`'s, a `ref.store`'s closing one), as it came. */
  readonly refPutHeaders: Array<Record<string, unknown>> = []
  mode: ServeMode = 'honest'
  listMode: ListMode = 'honest'
  putMode: PutMode = 'keep'
  /** For `slow`: how long each blob's acknowledgement waits. */
  slowAckMs = 0
  proveMode: ProveMode = 'honest'
  /** For `forged` (and `ref.get`): what it lists for these refIds instead of what it was sent. */
  readonly overrides = new Map<string, ListedRef>()
  /** `ref.list` pages answered. */
  listPages = 0
  /** `blob.prove` challenges answered. */
  proves = 0
  /** For `substitute`: when asked for a key cipherId, send the value's bytes. */
  readonly substitutes = new Map<string, string>()
  /** `request` (op, header) as each request arrives. */
  readonly events = new EventEmitter()
  connection: Connection | undefined
  socket: TLSSocket | undefined
  readonly #timers = new Set<NodeJS.Timeout>()
  readonly #sleepers = new Set<() => void>()
  /** For `endless-garbage`: the random blob it holds as a manifest. */
  #garbage: string | undefined

  constructor(readonly identity: NodeIdentity) {}

  /** A hostile peer with a fresh identity; with `accept`, the first fresh identity whose node id it accepts. */
  static async create(accept: (nodeId: string) => boolean = () => true): Promise<HostilePeer> {
    for (;;) {
      const identity = await createIdentity()
      if (accept(identity.nodeId)) return new HostilePeer(identity)
    }
  }

  get nodeId(): string {
    return this.identity.nodeId
  }

  /** Dials `address`, is admitted, and serves the requests that come. */
  async connect(address: string, secret: string): Promise<Connection> {
    const { socket, status } = await admitTo(address, { secret, identity: this.identity })
    if (status !== 0) throw new Error(`the hostile peer was refused (status ${status})`)
    this.socket = socket
    const conn = createMuxedConnection(socket, { direction: 'outbound', remoteNodeId: '0'.repeat(64), remoteAddress: address })
    this.connection = conn
    void (async () => {
      try {
        for await (const stream of conn.incoming) void this.#serve(stream).catch(() => stream.reset())
      } catch {
        // the connection ended
      }
    })()
    return conn
  }

  /** Admitted, then raw bytes instead of the multiplexer; resolves once the listener closes (or not, after `timeoutMs`). */
  async rawAfterAdmission(address: string, secret: string, bytes: Buffer, timeoutMs: number): Promise<{ closed: boolean; received: number }> {
    const { socket, status } = await admitTo(address, { secret, identity: this.identity })
    if (status !== 0) throw new Error(`the hostile peer was refused (status ${status})`)
    socket.write(bytes)
    const out = await drain(socket, timeoutMs)
    socket.destroy()
    return { closed: out.closed, received: out.bytes.length }
  }

  async disconnect(): Promise<void> {
    const conn = this.connection
    this.connection = undefined
    for (const t of this.#timers) clearTimeout(t)
    this.#timers.clear()
    for (const wake of this.#sleepers) wake()
    this.#sleepers.clear()
    if (conn === undefined) return
    conn.abort(new Error('hostile peer leaves'))
    await conn.closed
  }

  /** Resolves after `ms`, or at once when the peer disconnects. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer)
        this.#timers.delete(timer)
        this.#sleepers.delete(wake)
        resolve()
      }
      const timer = setTimeout(wake, ms)
      this.#timers.add(timer)
      this.#sleepers.add(wake)
    })
  }

  async #serve(stream: Stream): Promise<void> {
    const reader = new Reader(stream)
    const h = await reader.header()
    if (h === undefined) return void (await stream.closeWrite())
    this.events.emit('request', h.op, h)
    const send = (header: unknown): Promise<void> => stream.write(frame(header))
    switch (h.op) {
      case 'blob.has': {
        const ids = h.cipherIds as string[]
        await send({ ok: true, missing: ids.filter((id) => !this.blobs.has(id)) })
        break
      }
      case 'blob.put': {
        const id = h.cipherId as string
        if (this.putMode === 'refuse') {
          await send(REFUSAL)
          break
        }
        if (this.blobs.has(id)) {
          await send({ ok: true, have: true })
          break
        }
        await send({ ok: true, have: false })
        const sizeHeader = await reader.header()
        const size = sizeHeader?.size as number
        const body = await reader.bytes(size)
        if (body !== undefined && this.putMode !== 'drop') this.blobs.set(id, Buffer.from(body))
        if (this.putMode === 'slow') await this.#sleep(this.slowAckMs)
        await send({ ok: true })
        break
      }
      case 'blob.release':
        await send({ ok: true })
        break
      case 'blob.prove': {
        this.proves++
        const bytes = this.blobs.get(h.cipherId as string)
        if (this.proveMode === 'made-up') await send({ ok: true, proof: randomBytes(32).toString('hex') })
        else if (bytes === undefined) await send({ ok: false, code: 'ERR_NOT_FOUND', message: 'no such blob' })
        else await send({ ok: true, proof: createHash('sha256').update(Buffer.from(h.nonce as string, 'hex')).update(bytes).digest('hex') })
        break
      }
      case 'ref.put': {
        this.refPutHeaders.push(h)
        await send(this.#commit(h, await reader.bytes(h.bodySize as number)))
        break
      }
      case 'ref.store':
        await send(await this.#store(reader))
        break
      case 'ref.delete':
        this.refs.delete(h.refId as string)
        await send({ ok: true })
        break
      case 'ref.get': {
        const ref = this.overrides.get(h.refId as string) ?? this.refs.get(h.refId as string)
        await send(ref === undefined ? { ok: true } : { ok: true, ref: { refId: ref.refId, version: ref.version, deleted: 'deleted' in ref && ref.deleted, manifestCipherId: ref.manifestCipherId } })
        break
      }
      case 'ref.list':
        return this.#list(stream, send, typeof h.after === 'string' ? h.after : undefined)
      case 'blob.get':
        return this.#get(stream, h.cipherId as string)
      default:
        await send({ ok: false, code: 'ERR_PROTOCOL', message: 'unknown' })
    }
    await stream.closeWrite()
  }

  /**
   * A `ref.store`: the blobs as they come (`{ cipherId, size }` and the bytes; `{ cipherId }` alone names one it
   * should have), kept as {@link HostilePeer.putMode} says (`slow`: each read only after {@link HostilePeer.slowAckMs}),
   * then the ref (`{ end: true, … }` and its cipherIds), answered once as a `ref.put` is.
   */
  async #store(reader: Reader): Promise<Record<string, unknown>> {
    for (;;) {
      const item = await reader.header()
      if (item === undefined) throw new Error('the ref.store ended before its ref')
      if (item.end === true) {
        this.refPutHeaders.push(item)
        return this.#commit(item, await reader.bytes(item.bodySize as number))
      }
      if (item.size === undefined) continue
      const bytes = await reader.bytes(item.size as number)
      if (bytes === undefined) throw new Error('the ref.store ended inside a blob')
      if (this.putMode === 'keep' || this.putMode === 'slow') this.blobs.set(item.cipherId as string, Buffer.from(bytes))
      if (this.putMode === 'slow') await this.#sleep(this.slowAckMs)
    }
  }

  /**
   * The answer to a ref (`ref.put`, or a `ref.store`'s end; `body` its cipherIds as JSON): refused (`refuse`),
   * recorded on trust (`drop`), or, as a holder does, recorded once it holds every blob the ref names.
   */
  #commit(h: Record<string, unknown>, body: Buffer | undefined): Record<string, unknown> {
    if (this.putMode === 'refuse') return REFUSAL
    const ref: RefSeen = { refId: h.refId as string, version: h.version as number, manifestCipherId: h.manifestCipherId as string }
    if (this.putMode !== 'drop') {
      let cipherIds: string[] = []
      try {
        cipherIds = JSON.parse(body?.toString('utf8') ?? '[]') as string[]
      } catch {
        return { ok: false, code: 'ERR_PROTOCOL', message: 'the cipherIds of a ref are not JSON' }
      }
      const missing = [ref.manifestCipherId, ...cipherIds].filter((id) => !this.blobs.has(id))
      if (missing.length > 0) return { ok: false, code: 'ERR_MISSING', missing: missing.slice(0, 512) }
    }
    this.refPuts.push(ref)
    this.refs.set(ref.refId, ref)
    return { ok: true }
  }

  /** A full page of new refIds after `after` (the page's cursor), each from `entry`. */
  #endlessPage(after: string | undefined, entry: (refId: string, i: number) => Record<string, unknown>): Array<Record<string, unknown>> {
    const first = after === undefined ? 0n : BigInt(`0x${after}`) + 1n
    return Array.from({ length: LIST_PAGE }, (_, i) => entry((first + BigInt(i)).toString(16).padStart(64, '0'), i))
  }

  async #list(stream: Stream, send: (h: unknown) => Promise<void>, after: string | undefined): Promise<void> {
    this.listPages++
    const refs = [...this.refs.values()].sort((a, b) => (a.refId < b.refId ? -1 : 1))
    const live = (r: RefSeen, version = r.version): Record<string, unknown> => ({ refId: r.refId, version, deleted: false, manifestCipherId: r.manifestCipherId })
    switch (this.listMode) {
      case 'honest':
        await send({ ok: true, entries: refs.map((r) => live(r)) })
        break
      case 'fake-newer':
        // A valid older manifest presented as a much newer version.
        await send({ ok: true, entries: refs.map((r) => live(r, r.version + 5)) })
        break
      case 'fake-tombstones':
        await send({ ok: true, entries: refs.map((r) => ({ refId: r.refId, version: r.version + 5, deleted: true })) })
        break
      case 'fake-tombstones-dated':
        // The same, claiming the owner deleted them just now.
        await send({ ok: true, entries: refs.map((r) => ({ refId: r.refId, version: r.version + 5, deleted: true, writtenAt: Date.now() })) })
        break
      case 'malformed':
        await send({ ok: true, entries: [{ refId: '../../etc', version: -1 }, 'x', null] })
        break
      case 'backwards':
        await send({ ok: true, entries: Array.from({ length: 256 }, (_, i) => ({ refId: (255 - i).toString(16).padStart(64, '0'), version: 1, deleted: true })) })
        break
      case 'huge-page':
        await send({ ok: true, entries: Array.from({ length: 5000 }, (_, i) => ({ refId: i.toString(16).padStart(64, '0'), version: 1, deleted: true })) })
        break
      case 'many-stanzas': {
        // A newer version of every ref whose manifest (which it holds, so the cipherId matches) has 10,000 stanzas.
        const file = manyStanzaFile(10_000)
        const id = createHash('sha256').update(file).digest('hex')
        this.blobs.set(id, file)
        await send({ ok: true, entries: refs.map((r) => ({ ...live(r, r.version + 5), manifestCipherId: id })) })
        break
      }
      case 'forged': {
        const listed = new Map<string, ListedRef>(refs.map((r) => [r.refId, { ...r, deleted: false }]))
        for (const [refId, o] of this.overrides) listed.set(refId, o)
        const entries = [...listed.values()].sort((a, b) => (a.refId < b.refId ? -1 : 1))
        await send({ ok: true, entries: entries.filter((e) => after === undefined || e.refId > after).slice(0, LIST_PAGE) })
        break
      }
      case 'endless-tombstones':
        // Deletes claimed just now, without a proof or with a made-up one.
        await send({ ok: true, entries: this.#endlessPage(after, (refId, i) => ({ refId, version: 1, deleted: true, writtenAt: Date.now(), ...(i % 2 === 0 ? {} : { proof: randomBytes(32).toString('hex') }) })) })
        break
      case 'endless-garbage': {
        // Live refs whose manifests are random bytes it holds (they hash to their id but decrypt to nothing), or blobs it lacks.
        if (this.#garbage === undefined) {
          const bytes = randomBytes(4096)
          this.#garbage = createHash('sha256').update(bytes).digest('hex')
          this.blobs.set(this.#garbage, bytes)
        }
        const held = this.#garbage
        await send({ ok: true, entries: this.#endlessPage(after, (refId, i) => ({ refId, version: 1, deleted: false, manifestCipherId: i % 2 === 0 ? held : randomBytes(32).toString('hex') })) })
        break
      }
    }
    await stream.closeWrite()
  }

  async #get(stream: Stream, cipherId: string): Promise<void> {
    this.gets.push(cipherId)
    const bytes = this.blobs.get(cipherId)
    const send = (b: Uint8Array): Promise<void> => stream.write(b)
    const mode = bytes === undefined && this.mode === 'honest' ? 'error' : this.mode
    const real = bytes ?? randomBytes(1024)
    switch (mode) {
      case 'honest':
        await send(frame({ ok: true, size: real.length }))
        await send(real)
        break
      case 'wrong-bytes':
        await send(frame({ ok: true, size: real.length }))
        await send(randomBytes(real.length))
        break
      case 'other-blob': {
        const other = [...this.blobs].find(([id]) => id !== cipherId)?.[1] ?? randomBytes(100)
        await send(frame({ ok: true, size: other.length }))
        await send(other)
        break
      }
      case 'substitute': {
        const sub = this.blobs.get(this.substitutes.get(cipherId) ?? '') ?? randomBytes(100)
        await send(frame({ ok: true, size: sub.length }))
        await send(sub)
        break
      }
      case 'malformed-header':
        await send(Buffer.concat([Buffer.from([0, 0, 0, 9]), Buffer.from('{not json')]))
        break
      case 'huge-header':
        await send(Buffer.from([0x7f, 0xff, 0xff, 0xff, 0x7b]))
        break
      case 'oversized-size':
        await send(frame({ ok: true, size: 2 ** 40 }))
        await send(randomBytes(4096))
        break
      case 'short-body':
        await send(frame({ ok: true, size: real.length }))
        await send(real.subarray(0, real.length >> 1))
        break
      case 'long-body':
        await send(frame({ ok: true, size: real.length }))
        await send(real)
        await send(randomBytes(777))
        break
      case 'silent':
        // Never answers; the reader's per-peer timeout must move on.
        return
      case 'trickle': {
        await send(frame({ ok: true, size: real.length }))
        const drip = (): void => {
          const t = setTimeout(() => {
            this.#timers.delete(t)
            stream.write(randomBytes(1)).then(drip, () => {})
          }, 200)
          this.#timers.add(t)
        }
        drip()
        return
      }
      case 'error':
        await send(frame({ ok: false, code: 'ERR_NOT_FOUND', message: 'no such blob' }))
        break
    }
    await stream.closeWrite()
  }

  /**
   * Opens a stream and sends raw request bytes (then half-closes, unless `end` is false); reports
   * what came back: the response bytes, whether the node reset the stream, or nothing in time.
   */
  async request(bytes: Buffer | Buffer[], options: { end?: boolean; timeoutMs?: number } = {}): Promise<{ reset: boolean; response: Buffer; timedOut: boolean }> {
    const conn = this.connection
    if (conn === undefined) throw new Error('not connected')
    let stream: Stream
    try {
      stream = await conn.openStream()
    } catch {
      // The node closed the connection (as it does after a malformed request).
      return { reset: true, response: Buffer.alloc(0), timedOut: false }
    }
    let writeFailed = false
    try {
      for (const p of Array.isArray(bytes) ? bytes : [bytes]) await stream.write(p)
      if (options.end !== false) await stream.closeWrite()
    } catch {
      writeFailed = true
    }
    let timer: NodeJS.Timeout | undefined
    try {
      const outcome = await Promise.race([
        new Reader(stream).rest(1024 * 1024),
        new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), options.timeoutMs ?? 10_000))),
      ])
      if (outcome === 'timeout') {
        stream.reset()
        return { reset: writeFailed, response: Buffer.alloc(0), timedOut: true }
      }
      return { reset: outcome.reset || writeFailed, response: outcome.bytes, timedOut: false }
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * As an owner: stores a blob on the node, as an owner's `blob.put` does (the header, the node's go-ahead,
   * then the size and the bytes). Resolves to `ok`, `have`, or the code the node answered with.
   */
  async putBlob(bytes: Buffer, timeoutMs = 10_000): Promise<string> {
    const conn = this.connection
    if (conn === undefined) throw new Error('not connected')
    const stream = await conn.openStream()
    const reader = new Reader(stream)
    const exchange = async (): Promise<string> => {
      await stream.write(frame({ v: 1, op: 'blob.put', cipherId: createHash('sha256').update(bytes).digest('hex') }))
      const first = await reader.header()
      if (first?.ok !== true) return answerOf(first)
      if (first.have === true) {
        await stream.closeWrite()
        return 'have'
      }
      await stream.write(frame({ size: bytes.length }))
      await stream.write(bytes)
      await stream.closeWrite()
      const second = await reader.header()
      return second?.ok === true ? 'ok' : answerOf(second)
    }
    return this.#bounded(stream, reader, exchange(), timeoutMs)
  }

  /** As an owner: records a ref naming blobs it stored (`ref.put`). Resolves to `ok` or the code the node answered with. */
  async putRef(ref: { refId: string; version: number; manifestCipherId: string; cipherIds: string[] }, timeoutMs = 10_000): Promise<string> {
    const body = Buffer.from(JSON.stringify(ref.cipherIds))
    const header = { v: 1, op: 'ref.put', refId: ref.refId, version: ref.version, manifestCipherId: ref.manifestCipherId, count: ref.cipherIds.length, bodySize: body.length }
    const out = await this.request([frame(header), body], { timeoutMs })
    if (out.timedOut) return 'no answer'
    const h = parseResponses(out.response)[0]
    return h?.ok === true ? 'ok' : h === undefined && out.reset ? 'reset' : answerOf(h)
  }

  /** `exchange`'s outcome, or `timeout` after `timeoutMs`; the stream is read to its end (so that it frees its slot), or reset. */
  async #bounded(stream: Stream, reader: Reader, exchange: Promise<string>, timeoutMs: number): Promise<string> {
    let timer: NodeJS.Timeout | undefined
    try {
      const outcome = await Promise.race([exchange.catch(() => 'reset'), new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)))])
      if (outcome === 'timeout' || outcome === 'reset') stream.reset()
      else await reader.rest(1024).catch(() => undefined)
      return outcome
    } finally {
      clearTimeout(timer)
    }
  }
}
