// The machine ceiling of the end-to-end suite: what this machine does with the same bytes, durably,
// in three processes, with nothing but node:crypto, node:fs and node:tls — not dcas's design
// replayed without dcas (that is raw/pipeline-node.ts). It answers the requests a dcas node
// answers (`store(key, size, seed)`, `read(key)`, `delete(key)`) over IPC:
//
// - store: the data (generated in this process, as a dcas node's child generates it) is hashed
//   once (SHA-256 of the object), sealed with ChaCha20-Poly1305 in 64 KiB records, written to
//   one local file, and streamed over TLS 1.3 to two peer processes, which write it to one file
//   each. Each node fsyncs its file once, at the end of the object; the store is done when the
//   owner's fsync and both peers' acknowledgements (sent after their fsync) are in. No request
//   or acknowledgement per chunk: one per object per peer.
// - read: the local file is read and checked against the object's SHA-256; after local loss the
//   ciphertext is fetched from a peer over TLS, each record opened (its tag checked before its
//   bytes are used), checked against the object's SHA-256, and written back to a local file,
//   fsynced once.
// - delete: the local file is unlinked, and each peer asked to unlink its copy.
//
// As node-main does for a dcas node, the caller's own work is done here too: the data is
// generated inside the timed store and its digest recomputed after it (untimed), and every read
// computes the caller's digest of what it returns. The suite measures that work alone
// (`harness`) and subtracts it from the CPU figures of both.
//
// Each process runs as a bench worker (lib.ts): `--role owner|peer --root DIR`.
import { createCipheriv, createDecipheriv, createHash, randomBytes, type DecipherChaCha20Poly1305 } from 'node:crypto'
import { once } from 'node:events'
import { closeSync, fsync, mkdirSync, openSync, readSync, unlinkSync, writevSync } from 'node:fs'
import { join } from 'node:path'
import { connect, createServer, type TLSSocket } from 'node:tls'
import { promisify } from 'node:util'
import { createIdentity } from '@dcas/p2p'
import { dataDigest, generateData } from '@dcas/server/testing'
import { argValue, serveWorker } from '../lib.js'

const RECORD = 64 * 1024
const TAG = 16
const SEALED_RECORD = RECORD + TAG
/** Payload bytes per frame, and the size of the send buffers frames are built in. */
const FRAME_PAYLOAD = 1024 * 1024
const fsyncFd = promisify(fsync)

// ---- framing: type (1) ‖ request id (4) ‖ payload length (4) ‖ payload -------------------
// An object goes as WHOLE when it fits in one frame, else as BEGIN, DATA…, LAST; a peer answers
// ACK once it is durable. Reads are GET, answered by DATA frames and an END.
const HEADER = 9
const BEGIN = 1 // payload: key length (2) ‖ key ‖ the object's first bytes
const DATA = 2 // payload: more bytes
const LAST = 3 // payload: the object's last bytes; the object is complete
const WHOLE = 4 // payload: key length (2) ‖ key ‖ the whole object
const GET = 5 // payload: the key; answered by DATA frames and an END
const END = 6
const DEL = 7 // payload: the key; answered by ACK
const ACK = 8
const ERR = 9 // payload: a message
/** Bytes of frames a socket may have in flight (not yet written out). */
const IN_FLIGHT_BYTES = 2 * (HEADER + FRAME_PAYLOAD)

interface Frame {
  type: number
  requestId: number
  /** Views of the socket's chunks (never copied). */
  payload: Buffer[]
}

/** Send buffers of one frame each, reused once every socket they were given to has written them. */
const spareBuffers: Buffer[] = []
function sendBuffer(): Buffer {
  return spareBuffers.pop() ?? Buffer.allocUnsafeSlow(HEADER + FRAME_PAYLOAD)
}

/**
 * Frames over one TLS socket. A frame is built in a send buffer ({@link sendBuffer}, payload
 * at {@link HEADER}), which the socket gets as one write (a TLS socket seals a single buffer in
 * place); at most two are in flight per socket, which is the backpressure.
 */
class FrameSocket {
  readonly #socket: TLSSocket
  readonly #head = Buffer.alloc(HEADER)
  #headFill = 0
  #left = -1
  #frame: Frame | undefined
  #inFlight = 0
  readonly #waiting: Array<() => void> = []

  constructor(socket: TLSSocket, onFrame: (frame: Frame) => void) {
    this.#socket = socket
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => {
      let at = 0
      while (at < chunk.length) {
        if (this.#left < 0) {
          const n = Math.min(HEADER - this.#headFill, chunk.length - at)
          chunk.copy(this.#head, this.#headFill, at, at + n)
          this.#headFill += n
          at += n
          if (this.#headFill < HEADER) continue
          this.#headFill = 0
          this.#left = this.#head.readUInt32BE(5)
          this.#frame = { type: this.#head[0]!, requestId: this.#head.readUInt32BE(1), payload: [] }
        } else {
          const n = Math.min(this.#left, chunk.length - at)
          this.#frame!.payload.push(chunk.subarray(at, at + n))
          this.#left -= n
          at += n
        }
        if (this.#left === 0) {
          this.#left = -1
          onFrame(this.#frame!)
        }
      }
    })
  }

  /** Writes a frame built in `buffer`; `written` runs once the socket is done with it. */
  async send(type: number, requestId: number, buffer: Buffer, length: number, written: () => void): Promise<void> {
    buffer[0] = type
    buffer.writeUInt32BE(requestId, 1)
    buffer.writeUInt32BE(length, 5)
    const bytes = HEADER + length
    while (this.#inFlight + bytes > IN_FLIGHT_BYTES && this.#inFlight > 0) await new Promise<void>((resolve) => this.#waiting.push(resolve))
    this.#inFlight += bytes
    this.#socket.write(buffer.subarray(0, bytes), () => {
      this.#inFlight -= bytes
      written()
      for (const wake of this.#waiting.splice(0)) wake()
    })
  }

  /** Sends a frame with a small payload (a key, a message) or none, in a buffer of its own size. */
  sendSmall(type: number, requestId: number, payload: Uint8Array = Buffer.alloc(0)): Promise<void> {
    const buffer = Buffer.allocUnsafe(HEADER + payload.length)
    buffer.set(payload, HEADER)
    return this.send(type, requestId, buffer, payload.length, () => undefined)
  }
}

function release(buffer: Buffer): void {
  if (spareBuffers.length < 16) spareBuffers.push(buffer)
}

/** Sends one frame, built once, to every socket; its buffer is reused after the last has written it. */
async function sendToAll(sockets: readonly FrameSocket[], type: number, requestId: number, buffer: Buffer, length: number): Promise<void> {
  let left = sockets.length
  await Promise.all(sockets.map((socket) => socket.send(type, requestId, buffer, length, () => --left === 0 && release(buffer))))
}

/** Splits the payload of a BEGIN or WHOLE frame into the key and the bytes after it. */
function keyed(payload: Buffer[]): { key: string; bytes: Buffer[] } {
  const first = payload[0]!.length >= 2 ? payload[0]! : Buffer.concat(payload)
  const keyLength = first.readUInt16BE(0)
  const joined = first.length >= 2 + keyLength ? first : Buffer.concat(payload)
  const key = joined.toString('utf8', 2, 2 + keyLength)
  const rest = joined === first ? [first.subarray(2 + keyLength), ...payload.slice(1)] : [joined.subarray(2 + keyLength)]
  return { key, bytes: rest }
}

function nonce(index: number, last: boolean): Buffer {
  const n = Buffer.alloc(12)
  n.writeUIntBE(index, 5, 6)
  n[11] = last ? 1 : 0
  return n
}

function sealedSize(size: number): number {
  return size + TAG * Math.max(1, Math.ceil(size / RECORD))
}

/** Writes every byte of `pieces` to `fd` at its offset. */
function writeAll(fd: number, pieces: readonly Uint8Array[]): void {
  let todo = pieces.filter((p) => p.length > 0)
  while (todo.length > 0) {
    let written = writevSync(fd, todo)
    let at = 0
    while (at < todo.length && written >= todo[at]!.length) written -= todo[at++]!.length
    todo = todo.slice(at)
    if (written > 0) todo[0] = todo[0]!.subarray(written)
  }
}

async function tlsCredentials(): Promise<{ key: string; cert: string }> {
  const identity = await createIdentity()
  return { key: identity.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, cert: identity.certificate }
}
const TLS = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' } as const

const root = argValue('--root')
if (root === undefined) throw new Error('--root is required')
const objects = join(root, 'objects')
mkdirSync(objects, { recursive: true })
const fileOf = (key: string): string => join(objects, encodeURIComponent(key))

if (argValue('--role') === 'peer') {
  // ---- a peer: keeps each object's ciphertext in one file, fsynced once ------------------
  const server = createServer({ ...(await tlsCredentials()), ...TLS, requestCert: true, rejectUnauthorized: false }, (socket) => {
    const open = new Map<number, number>()
    const frames: FrameSocket = new FrameSocket(socket, (frame) => {
      const { type, requestId, payload } = frame
      const fail = (err: unknown): void => void frames.sendSmall(ERR, requestId, Buffer.from(err instanceof Error ? err.message : String(err)))
      // The object is complete: fsync it once, then acknowledge.
      const durable = (fd: number): void => {
        fsyncFd(fd).then(() => {
          closeSync(fd)
          return frames.sendSmall(ACK, requestId)
        }, fail)
      }
      try {
        if (type === BEGIN || type === WHOLE) {
          const { key, bytes } = keyed(payload)
          const fd = openSync(fileOf(key), 'w')
          writeAll(fd, bytes)
          if (type === BEGIN) open.set(requestId, fd)
          else durable(fd)
        } else if (type === DATA || type === LAST) {
          const fd = open.get(requestId)!
          writeAll(fd, payload)
          if (type === LAST) {
            open.delete(requestId)
            durable(fd)
          }
        } else if (type === GET) {
          void sendFile(frames, requestId, fileOf(Buffer.concat(payload).toString())).catch(fail)
        } else if (type === DEL) {
          unlinkSync(fileOf(Buffer.concat(payload).toString()))
          void frames.sendSmall(ACK, requestId)
        }
      } catch (err) {
        fail(err)
      }
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  serveWorker((request) => {
    if (request.op === 'port') return Promise.resolve((server.address() as { port: number }).port)
    return Promise.reject(new Error(`unknown op ${request.op}`))
  })
} else {
  // ---- the owner -------------------------------------------------------------------------
  interface StoredObject {
    size: number
    sha256: string
    key: Buffer
  }
  const stored = new Map<string, StoredObject>()
  interface Peer {
    frames: FrameSocket
    /** Answers by request id: ACK/END resolve, ERR rejects; DATA frames go to `onData`. */
    pending: Map<number, { resolve: () => void; reject: (err: Error) => void; onData?: (payload: Buffer[]) => void }>
  }
  const peers: Peer[] = []
  let nextRequest = 0

  async function connectPeer(port: number): Promise<Peer> {
    const socket = connect({ host: '127.0.0.1', port, ...(await tlsCredentials()), ...TLS, rejectUnauthorized: false })
    await once(socket, 'secureConnect')
    const peer: Peer = {
      pending: new Map(),
      frames: new FrameSocket(socket, ({ type, requestId, payload }) => {
        const p = peer.pending.get(requestId)
        if (p === undefined) return
        if (type === DATA) return p.onData?.(payload)
        peer.pending.delete(requestId)
        if (type === ERR) p.reject(new Error(`peer: ${Buffer.concat(payload).toString()}`))
        else p.resolve()
      }),
    }
    return peer
  }

  /** Registers a request; its promise settles on the peer's ACK or END (or ERR). */
  function answer(peer: Peer, requestId: number, onData?: (payload: Buffer[]) => void): Promise<void> {
    return new Promise((resolve, reject) => peer.pending.set(requestId, { resolve, reject, ...(onData === undefined ? {} : { onData }) }))
  }

  async function store(key: string, size: number, seed: string | number): Promise<{ ms: number }> {
    const start = performance.now()
    const objectKey = randomBytes(32)
    const hash = createHash('sha256')
    const fd = openSync(fileOf(key), 'w')
    const requestId = nextRequest++
    const acks = peers.map((peer) => answer(peer, requestId))
    const sockets = peers.map((peer) => peer.frames)
    const records = Math.max(1, Math.ceil(size / RECORD))
    let record = 0
    let pending: Buffer[] = []
    let pendingBytes = 0
    // Sealed records go straight into a frame's send buffer, written to both peers; the first frame starts with the key.
    const keyBytes = Buffer.from(key)
    let frame = sendBuffer()
    frame.writeUInt16BE(keyBytes.length, HEADER)
    keyBytes.copy(frame, HEADER + 2)
    let framed = 2 + keyBytes.length
    let first = true
    const flushFrame = async (last: boolean): Promise<void> => {
      const type = first ? (last ? WHOLE : BEGIN) : last ? LAST : DATA
      first = false
      await sendToAll(sockets, type, requestId, frame, framed)
      frame = sendBuffer()
      framed = 0
    }
    const sealRecord = async (plain: Buffer): Promise<void> => {
      const cipher = createCipheriv('chacha20-poly1305', objectKey, nonce(record, record === records - 1), { authTagLength: TAG })
      record++
      const body = cipher.update(plain)
      cipher.final()
      if (framed + body.length + TAG > FRAME_PAYLOAD) await flushFrame(false)
      frame.set(body, HEADER + framed)
      frame.set(cipher.getAuthTag(), HEADER + framed + body.length)
      framed += body.length + TAG
    }
    for await (const piece of generateData(size, seed)) {
      const bytes = Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength)
      hash.update(bytes)
      writeAll(fd, [bytes])
      pending.push(bytes)
      pendingBytes += bytes.length
      while (pendingBytes >= RECORD) {
        const joined = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes)
        await sealRecord(joined.subarray(0, RECORD))
        pending = joined.length > RECORD ? [joined.subarray(RECORD)] : []
        pendingBytes -= RECORD
      }
    }
    if (pendingBytes > 0 || record === 0) await sealRecord(Buffer.concat(pending, pendingBytes))
    await flushFrame(true)
    release(frame)
    await fsyncFd(fd)
    closeSync(fd)
    await Promise.all(acks)
    stored.set(key, { size, sha256: hash.digest('hex'), key: objectKey })
    const ms = performance.now() - start
    // A dcas node's child checks the digest of what it stored after timing: the same work here, untimed.
    await dataDigest(size, seed)
    return { ms }
  }

  /** Opens sealed records as their bytes arrive, each released only once its tag checks. */
  function opener(object: StoredObject, onPlain: (plain: Buffer[]) => void): { feed(piece: Buffer): void; end(): void } {
    const records = Math.max(1, Math.ceil(object.size / RECORD))
    let index = 0
    let decipher: DecipherChaCha20Poly1305 | undefined
    let inRecord = 0
    let recordSize = 0
    let plain: Buffer[] = []
    const tag = Buffer.alloc(TAG)
    return {
      feed(piece: Buffer) {
        let at = 0
        while (at < piece.length) {
          if (decipher === undefined) {
            decipher = createDecipheriv('chacha20-poly1305', object.key, nonce(index, index === records - 1), { authTagLength: TAG })
            recordSize = index === records - 1 ? sealedSize(object.size) - index * SEALED_RECORD : SEALED_RECORD
            inRecord = 0
          }
          const bodyLeft = recordSize - TAG - inRecord
          if (bodyLeft > 0) {
            const n = Math.min(bodyLeft, piece.length - at)
            plain.push(decipher.update(piece.subarray(at, at + n)))
            inRecord += n
            at += n
            continue
          }
          const n = Math.min(recordSize - inRecord, piece.length - at)
          piece.copy(tag, TAG - (recordSize - inRecord), at, at + n)
          inRecord += n
          at += n
          if (inRecord === recordSize) {
            decipher.setAuthTag(tag)
            decipher.final()
            onPlain(plain)
            plain = []
            decipher = undefined
            index++
          }
        }
      },
      end() {
        if (index !== records) throw new Error(`the ciphertext ended after ${index} of ${records} records`)
      },
    }
  }

  async function read(key: string): Promise<{ size: number; sha256: string; ms: number }> {
    const start = performance.now()
    const object = stored.get(key)
    if (object === undefined) throw new Error(`no object ${key}`)
    const check = createHash('sha256')
    const caller = createHash('sha256')
    let size = 0
    let fd: number | undefined
    try {
      fd = openSync(fileOf(key), 'r')
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw err
    }
    if (fd !== undefined) {
      const buffer = Buffer.allocUnsafe(FRAME_PAYLOAD)
      for (;;) {
        const n = readSync(fd, buffer, 0, buffer.length, null)
        if (n === 0) break
        check.update(buffer.subarray(0, n))
        caller.update(buffer.subarray(0, n))
        size += n
      }
      closeSync(fd)
    } else {
      // Lost here: fetched from a peer, opened, checked, served and written back.
      mkdirSync(objects, { recursive: true })
      const out = openSync(fileOf(key), 'w')
      const open = opener(object, (plain) => {
        for (const piece of plain) {
          check.update(piece)
          caller.update(piece)
          size += piece.length
        }
        writeAll(out, plain)
      })
      const peer = peers[0]!
      const requestId = nextRequest++
      const done = answer(peer, requestId, (payload) => {
        for (const piece of payload) open.feed(piece)
      })
      await peer.frames.sendSmall(GET, requestId, Buffer.from(key))
      await done
      open.end()
      await fsyncFd(out)
      closeSync(out)
    }
    const sha256 = check.digest('hex')
    if (sha256 !== object.sha256 || size !== object.size) throw new Error(`${key}: read back ${size} bytes with SHA-256 ${sha256}`)
    return { size, sha256: caller.digest('hex'), ms: performance.now() - start }
  }

  async function remove(key: string): Promise<void> {
    if (!stored.delete(key)) throw new Error(`no object ${key}`)
    unlinkSync(fileOf(key))
    await Promise.all(
      peers.map(async (peer) => {
        const requestId = nextRequest++
        const done = answer(peer, requestId)
        await peer.frames.sendSmall(DEL, requestId, Buffer.from(key))
        await done
      }),
    )
  }

  /**
   * CPU seconds of the caller's own work that `count` stores and reads of `size` bytes do here as
   * in a dcas node's child (generating the data, checking its digest; the caller's digest of a
   * read), to be subtracted from the CPU figures.
   */
  async function harness(size: number, count: number): Promise<{ store: number; read: number }> {
    const cpu = (): number => {
      const { user, system } = process.cpuUsage()
      return (user + system) / 1e6
    }
    let at = cpu()
    for (let i = 0; i < count; i++) {
      for await (const _ of generateData(size, `harness ${i}`));
      await dataDigest(size, `harness ${i}`)
    }
    const store = cpu() - at
    const bytes = Buffer.alloc(Math.min(size, FRAME_PAYLOAD), 1)
    at = cpu()
    for (let i = 0; i < count; i++) {
      const hash = createHash('sha256')
      for (let done = 0; done < size; done += bytes.length) hash.update(bytes.subarray(0, Math.min(bytes.length, size - done)))
      hash.digest('hex')
    }
    return { store, read: cpu() - at }
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
      case 'harness':
        return harness(r.size as number, (r.count as number | undefined) ?? 1)
      default:
        throw new Error(`unknown op ${r.op}`)
    }
  })
}

/** A peer streams a file back in frames read straight into its send buffers. */
async function sendFile(frames: FrameSocket, requestId: number, path: string): Promise<void> {
  const fd = openSync(path, 'r')
  try {
    for (;;) {
      const buffer = sendBuffer()
      const n = readSync(fd, buffer, HEADER, FRAME_PAYLOAD, null)
      if (n === 0) {
        release(buffer)
        break
      }
      await frames.send(DATA, requestId, buffer, n, () => release(buffer))
    }
  } finally {
    closeSync(fd)
  }
  await frames.sendSmall(END, requestId)
}
