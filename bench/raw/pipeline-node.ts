// The raw pipeline: the ceiling of the end-to-end suite. The same requests as a dcas node in
// a child process (`store(key, size, seed)`, `read(key)`, `delete(key)`, driven over IPC),
// done with nothing but node:crypto, node:fs and node:tls, and the same work a dcas node must
// do by design, no more:
//
// - store: the data (generated in this process, as `spawnNode`'s child generates it) cut into
//   1 MiB chunks → SHA-256 (the chunk's name) → written to its own file and fsynced; and
//   ChaCha20-Poly1305 in 64 KiB records → SHA-256 of the ciphertext (its name on peers) → sent
//   over TLS 1.3 to two peer processes, each of which hashes it (to check the name), writes it
//   to a file, fsyncs, and acknowledges. Up to 4 chunks in flight locally and per peer.
// - read: each chunk's file read and checked against its name, 4 chunks ahead; after local
//   loss, fetched from a peer (which reads and checks its file), checked against the
//   ciphertext's name, decrypted, checked against the plaintext's name, written back (fsynced).
// - delete: the local files unlinked, and each peer asked to unlink its copies.
//
// Not done, because it is dcas design rather than raw work: no manifest or index (the chunk
// list is kept in memory), no temp file + rename + directory fsync, no age header, no whole-
// object digest, no multiplexing. The caller's digest of what it reads is done, as node-main
// does it. Each process runs as a bench worker (lib.ts): `--role owner|peer --root DIR`.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdir, open, readFile, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { connect, createServer, type TLSSocket } from 'node:tls'
import { createIdentity } from '@dcas/p2p'
import { dataDigest, generateData } from '@dcas/server/testing'
import { argValue, serveWorker } from '../lib.js'

const CHUNK = 1024 * 1024
const RECORD = 64 * 1024
const TAG = 16
const IN_FLIGHT = 4

// ---- framing: type (1) ‖ request id (4) ‖ body length (4) ‖ blob id (32) ‖ body ----------
const HEADER = 41
const PUT = 1
const GET = 2
const DEL = 3
const OK = 4
const ERR = 5

interface Frame {
  type: number
  requestId: number
  id: Buffer
  body: Buffer[]
}

/** Frames over one TLS socket: `send` honours backpressure, `onFrame` gets each whole frame. */
class FrameSocket {
  readonly #socket: TLSSocket
  readonly #head = Buffer.alloc(HEADER)
  #headFill = 0
  #bodyLeft = -1
  #frame: Frame | undefined

  constructor(socket: TLSSocket, onFrame: (frame: Frame) => void) {
    this.#socket = socket
    socket.setMaxListeners(0)
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => {
      let at = 0
      while (at < chunk.length) {
        if (this.#bodyLeft < 0) {
          const n = Math.min(HEADER - this.#headFill, chunk.length - at)
          chunk.copy(this.#head, this.#headFill, at, at + n)
          this.#headFill += n
          at += n
          if (this.#headFill < HEADER) continue
          this.#headFill = 0
          this.#bodyLeft = this.#head.readUInt32BE(5)
          this.#frame = { type: this.#head[0]!, requestId: this.#head.readUInt32BE(1), id: Buffer.from(this.#head.subarray(9)), body: [] }
        } else {
          const n = Math.min(this.#bodyLeft, chunk.length - at)
          this.#frame!.body.push(chunk.subarray(at, at + n))
          this.#bodyLeft -= n
          at += n
        }
        if (this.#bodyLeft === 0) {
          this.#bodyLeft = -1
          onFrame(this.#frame!)
        }
      }
    })
  }

  async send(type: number, requestId: number, id: Buffer | undefined, body: readonly Buffer[] = []): Promise<void> {
    const head = Buffer.alloc(HEADER)
    head[0] = type
    head.writeUInt32BE(requestId, 1)
    head.writeUInt32BE(body.reduce((n, b) => n + b.length, 0), 5)
    id?.copy(head, 9)
    let ok = this.#socket.write(head)
    for (const piece of body) ok = this.#socket.write(piece)
    if (!ok) await once(this.#socket, 'drain')
  }
}

const sha256 = (pieces: readonly Buffer[]): Buffer => {
  const hash = createHash('sha256')
  for (const p of pieces) hash.update(p)
  return hash.digest()
}

/** Writes `pieces` to a new file at `path` and fsyncs it. */
async function writeDurable(path: string, pieces: readonly Buffer[]): Promise<void> {
  const file = await open(path, 'w')
  try {
    await file.writev(pieces as Buffer[])
    await file.sync()
  } finally {
    await file.close()
  }
}

async function tlsCredentials(): Promise<{ key: string; cert: string }> {
  const identity = await createIdentity()
  return { key: identity.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, cert: identity.certificate }
}
const TLS = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' } as const

const root = argValue('--root')
if (root === undefined) throw new Error('--root is required')
await mkdir(join(root, 'blobs'), { recursive: true })

if (argValue('--role') === 'peer') {
  // ---- a peer: keeps ciphertext by its name, checks it both ways ---------------------------
  const dir = join(root, 'blobs')
  const handle = async (frames: FrameSocket, frame: Frame): Promise<void> => {
    const path = join(dir, frame.id.toString('hex'))
    try {
      if (frame.type === PUT) {
        if (!sha256(frame.body).equals(frame.id)) throw new Error('the bytes do not hash to their name')
        await writeDurable(path, frame.body)
        await frames.send(OK, frame.requestId, frame.id)
      } else if (frame.type === GET) {
        const bytes = await readFile(path)
        if (!sha256([bytes]).equals(frame.id)) throw new Error('a stored blob does not hash to its name')
        await frames.send(OK, frame.requestId, frame.id, [bytes])
      } else if (frame.type === DEL) {
        await unlink(path)
        await frames.send(OK, frame.requestId, frame.id)
      }
    } catch (err) {
      await frames.send(ERR, frame.requestId, frame.id, [Buffer.from(err instanceof Error ? err.message : String(err))])
    }
  }
  const server = createServer({ ...(await tlsCredentials()), ...TLS, requestCert: true, rejectUnauthorized: false }, (socket) => {
    const frames: FrameSocket = new FrameSocket(socket, (frame) => void handle(frames, frame))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  serveWorker((request) => {
    if (request.op === 'port') return Promise.resolve((server.address() as { port: number }).port)
    return Promise.reject(new Error(`unknown op ${request.op}`))
  })
} else {
  // ---- the owner: stores, reads and deletes, replicating to its peers ----------------------
  const dir = join(root, 'blobs')
  interface Chunk {
    plainId: Buffer
    cipherId: Buffer
    key: Buffer
  }
  const objects = new Map<string, Chunk[]>()

  interface Peer {
    frames: FrameSocket
    pending: Map<number, { resolve: (body: Buffer[]) => void; reject: (err: Error) => void }>
  }
  const peers: Peer[] = []
  let nextRequest = 0

  async function request(peer: Peer, type: number, id: Buffer, body: Buffer[] = []): Promise<Buffer[]> {
    const requestId = nextRequest++
    const answer = new Promise<Buffer[]>((resolve, reject) => peer.pending.set(requestId, { resolve, reject }))
    await peer.frames.send(type, requestId, id, body)
    return answer
  }

  async function connectPeer(port: number): Promise<Peer> {
    const socket = connect({ host: '127.0.0.1', port, ...(await tlsCredentials()), ...TLS, rejectUnauthorized: false })
    await once(socket, 'secureConnect')
    const peer: Peer = {
      pending: new Map(),
      frames: new FrameSocket(socket, (frame) => {
        const p = peer.pending.get(frame.requestId)
        peer.pending.delete(frame.requestId)
        if (frame.type === OK) p?.resolve(frame.body)
        else p?.reject(new Error(`peer: ${Buffer.concat(frame.body).toString()}`))
      }),
    }
    return peer
  }

  /** Up to `limit` tasks at once; `add` waits for a free slot; the first failure is rethrown by `drain`. */
  class Window {
    readonly #running = new Set<Promise<void>>()
    #error: Error | undefined
    constructor(readonly limit: number) {}
    async add(task: () => Promise<unknown>): Promise<void> {
      while (this.#running.size >= this.limit) await Promise.race(this.#running)
      const p: Promise<void> = task().then(
        () => void this.#running.delete(p),
        (err: unknown) => {
          this.#error ??= err instanceof Error ? err : new Error(String(err))
          this.#running.delete(p)
        },
      )
      this.#running.add(p)
    }
    async drain(): Promise<void> {
      await Promise.all(this.#running)
      if (this.#error !== undefined) throw this.#error
    }
  }

  /** The data in chunks of CHUNK bytes (the last one shorter). */
  async function* chunks(source: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
    let pieces: Buffer[] = []
    let filled = 0
    for await (const piece of source) {
      let at = 0
      while (at < piece.length) {
        const n = Math.min(CHUNK - filled, piece.length - at)
        pieces.push(Buffer.from(piece.buffer, piece.byteOffset + at, n))
        filled += n
        at += n
        if (filled === CHUNK) {
          yield pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, filled)
          pieces = []
          filled = 0
        }
      }
    }
    if (filled > 0) yield Buffer.concat(pieces, filled)
  }

  const nonce = (index: number, last: boolean): Buffer => {
    const n = Buffer.alloc(12)
    n.writeUInt32BE(index, 7)
    n[11] = last ? 1 : 0
    return n
  }

  /** ChaCha20-Poly1305 over 64 KiB records, as the age payload: body ‖ tag per record. */
  function seal(plain: Buffer, key: Buffer): Buffer[] {
    const out: Buffer[] = []
    const records = Math.max(1, Math.ceil(plain.length / RECORD))
    for (let i = 0; i < records; i++) {
      const cipher = createCipheriv('chacha20-poly1305', key, nonce(i, i === records - 1), { authTagLength: TAG })
      out.push(cipher.update(plain.subarray(i * RECORD, (i + 1) * RECORD)))
      cipher.final()
      out.push(cipher.getAuthTag())
    }
    return out
  }

  function unseal(sealed: Buffer, key: Buffer): Buffer {
    const out: Buffer[] = []
    const records = Math.max(1, Math.ceil(sealed.length / (RECORD + TAG)))
    for (let i = 0; i < records; i++) {
      const record = sealed.subarray(i * (RECORD + TAG), (i + 1) * (RECORD + TAG))
      const decipher = createDecipheriv('chacha20-poly1305', key, nonce(i, i === records - 1), { authTagLength: TAG })
      out.push(decipher.update(record.subarray(0, record.length - TAG)))
      decipher.setAuthTag(record.subarray(record.length - TAG))
      decipher.final()
    }
    return out.length === 1 ? out[0]! : Buffer.concat(out)
  }

  async function store(key: string, size: number, seed: string | number): Promise<{ ms: number }> {
    const start = performance.now()
    await mkdir(dir, { recursive: true })
    const list: Chunk[] = []
    const local = new Window(IN_FLIGHT)
    const remote = peers.map(() => new Window(IN_FLIGHT))
    for await (const plain of chunks(generateData(size, seed))) {
      const chunk: Chunk = { plainId: sha256([plain]), key: randomBytes(32), cipherId: Buffer.alloc(0) }
      const cipher = seal(plain, chunk.key)
      chunk.cipherId = sha256(cipher)
      list.push(chunk)
      await local.add(() => writeDurable(join(dir, chunk.plainId.toString('hex')), [plain]))
      for (let i = 0; i < peers.length; i++) await remote[i]!.add(() => request(peers[i]!, PUT, chunk.cipherId, cipher))
    }
    await local.drain()
    for (const w of remote) await w.drain()
    objects.set(key, list)
    const ms = performance.now() - start
    // node-main checks the digest of what it stored after timing: the same work here, untimed.
    await dataDigest(size, seed)
    return { ms }
  }

  /** A chunk's plaintext: the local file, checked; else fetched, checked twice, decrypted and written back. */
  async function load(chunk: Chunk): Promise<Buffer> {
    const path = join(dir, chunk.plainId.toString('hex'))
    try {
      const bytes = await readFile(path)
      if (sha256([bytes]).equals(chunk.plainId)) return bytes
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw err
    }
    const body = await request(peers[0]!, GET, chunk.cipherId)
    if (!sha256(body).equals(chunk.cipherId)) throw new Error('a peer sent bytes that do not hash to the cipher id')
    const plain = unseal(body.length === 1 ? body[0]! : Buffer.concat(body), chunk.key)
    if (!sha256([plain]).equals(chunk.plainId)) throw new Error('decrypted bytes do not hash to the plain id')
    await mkdir(dir, { recursive: true })
    await writeDurable(path, [plain])
    return plain
  }

  async function read(key: string): Promise<{ size: number; sha256: string; ms: number }> {
    const start = performance.now()
    const list = objects.get(key)
    if (list === undefined) throw new Error(`no object ${key}`)
    const hash = createHash('sha256')
    let size = 0
    const ahead: Array<Promise<Buffer>> = []
    let next = 0
    const fill = (): void => {
      while (ahead.length < IN_FLIGHT && next < list.length) {
        const p = load(list[next++]!)
        p.catch(() => {})
        ahead.push(p)
      }
    }
    fill()
    while (ahead.length > 0) {
      const bytes = await ahead.shift()!
      fill()
      hash.update(bytes)
      size += bytes.length
    }
    return { size, sha256: hash.digest('hex'), ms: performance.now() - start }
  }

  async function remove(key: string): Promise<void> {
    const list = objects.get(key)
    if (list === undefined) throw new Error(`no object ${key}`)
    objects.delete(key)
    const work = new Window(IN_FLIGHT * 4)
    for (const chunk of list) {
      await work.add(() => unlink(join(dir, chunk.plainId.toString('hex'))))
      for (const peer of peers) await work.add(() => request(peer, DEL, chunk.cipherId))
    }
    await work.drain()
  }

  serveWorker(async (r) => {
    switch (r.op) {
      case 'connect':
        for (const port of r.ports as number[]) peers.push(await connectPeer(port))
        return undefined
      case 'store':
        return store(r.key as string, r.size as number, r.seed as string | number)
      case 'read':
        return read(r.key as string)
      case 'delete':
        return remove(r.key as string)
      default:
        throw new Error(`unknown op ${r.op}`)
    }
  })
}
