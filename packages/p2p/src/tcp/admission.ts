// Admission: right after the TLS 1.3 handshake and before any application byte,
// each side sends a hello (protocol versions, proof of the cluster secret over
// this session) and then a verdict. Every read here is bounded in size; the
// caller bounds it in time through `signal`.
//
//   hello   = "dcas" | 0x01 | n (1..16) | n × version (u16 BE) | proofLength (0 or 32) | proof
//   verdict = "dcas" | 0x02 | status (0 ok, 1 unauthorized, 2 no common version) | version (u16 BE)
//
// proof = HMAC-SHA256(clusterSecret, role label | exportKeyingMaterial(32, EXPORTER_LABEL)).
// The role label (the sender's role) keeps a proof from being reflected back.
import { createHmac, timingSafeEqual } from 'node:crypto'
import type { Duplex } from 'node:stream'
import type { TLSSocket } from 'node:tls'
import { type P2PError, PeerUnauthorizedError, ProtocolError, ProtocolVersionError } from '../errors.js'
import { nodeIdFromPublicKey } from '../identity/identity.js'

/** Protocol versions this implementation speaks, oldest first. */
export const PROTOCOL_VERSIONS: readonly number[] = [1]

const MAGIC = Buffer.from('dcas', 'latin1')
const HELLO = 0x01
const VERDICT = 0x02
const MAX_VERSIONS = 16
const PROOF_LENGTH = 32
const EXPORTER_LABEL = 'EXPORTER-dcas-admission'
const ROLE_LABEL = { outbound: 'dcas admission: dialler', inbound: 'dcas admission: listener' } as const

/** A verdict's status byte. */
export const Status = { Ok: 0, Unauthorized: 1, NoCommonVersion: 2 } as const
/** One of {@link Status}. */
export type Status = (typeof Status)[keyof typeof Status]

/** Which role this side plays in the TLS session. */
export type Role = 'inbound' | 'outbound'

/** What a side requires of its peer. */
export interface AdmissionPolicy {
  /** The cluster secret; absent, only the allow-list admits. */
  secret?: Uint8Array
  /** Node ids admitted without a proof. */
  allowList: ReadonlySet<string>
  /** Protocol versions we speak. */
  versions: readonly number[]
  /** On dial: the node id we expect to reach; anyone else is refused. */
  expectedNodeId?: string
}

/** The outcome of a successful admission. */
export interface Admitted {
  remoteNodeId: string
  version: number
}

/** A hello as read off the wire. */
export interface Hello {
  versions: number[]
  proof: Buffer | undefined
}

/** Encodes a hello message. */
export function encodeHello(hello: Hello): Buffer {
  const { versions, proof } = hello
  const out = Buffer.alloc(6 + 2 * versions.length + 1 + (proof?.length ?? 0))
  MAGIC.copy(out, 0)
  out[4] = HELLO
  out[5] = versions.length
  versions.forEach((v, i) => out.writeUInt16BE(v, 6 + 2 * i))
  const at = 6 + 2 * versions.length
  out[at] = proof?.length ?? 0
  proof?.copy(out, at + 1)
  return out
}

/** Encodes a verdict message. */
export function encodeVerdict(status: Status, version: number): Buffer {
  const out = Buffer.alloc(8)
  MAGIC.copy(out, 0)
  out[4] = VERDICT
  out[5] = status
  out.writeUInt16BE(version, 6)
  return out
}

function checkMagic(header: Buffer, type: number, what: string): void {
  if (!header.subarray(0, 4).equals(MAGIC) || header[4] !== type) {
    throw new ProtocolError(`the peer sent something other than a dcas ${what}`)
  }
}

/**
 * Reads exactly `n` bytes and no more, so that whatever follows stays in the
 * socket's buffer for the muxer. Leaves the socket with no listeners of its own.
 */
export function readExactly(socket: Duplex, n: number, signal: AbortSignal): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    let settled = false
    const settle = (err: Error | undefined, data?: Buffer): void => {
      settled = true
      socket.off('readable', onReadable)
      socket.off('end', onEnd)
      socket.off('close', onEnd)
      socket.off('error', onError)
      signal.removeEventListener('abort', onAbort)
      if (err !== undefined) reject(err)
      else resolve(data!)
    }
    const onReadable = (): void => {
      const chunk = socket.read(n) as Buffer | null
      if (chunk === null) return
      if (chunk.length < n) settle(new PeerUnauthorizedError('the peer closed the connection during admission'))
      else settle(undefined, chunk)
    }
    const onEnd = (): void => settle(new PeerUnauthorizedError('the peer closed the connection during admission'))
    const onError = (cause: Error): void =>
      settle(new PeerUnauthorizedError('the connection failed during admission', { cause }))
    const onAbort = (): void => settle(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)))
    if (signal.aborted) return onAbort()
    signal.addEventListener('abort', onAbort)
    socket.on('readable', onReadable)
    socket.on('end', onEnd)
    socket.on('close', onEnd)
    socket.on('error', onError)
    onReadable()
    if (!settled && (socket.destroyed || socket.readableEnded)) onEnd()
  })
}

/** Reads one hello; malformed or out-of-bounds input fails with `ERR_PROTOCOL`. */
export async function readHello(socket: Duplex, signal: AbortSignal): Promise<Hello> {
  const header = await readExactly(socket, 6, signal)
  checkMagic(header, HELLO, 'hello')
  const count = header[5]!
  if (count < 1 || count > MAX_VERSIONS) throw new ProtocolError(`a hello lists ${count} versions (1 to ${MAX_VERSIONS} allowed)`)
  const body = await readExactly(socket, 2 * count + 1, signal)
  const versions = Array.from({ length: count }, (_, i) => body.readUInt16BE(2 * i))
  const proofLength = body[2 * count]!
  if (proofLength !== 0 && proofLength !== PROOF_LENGTH) throw new ProtocolError(`a hello proof of ${proofLength} bytes`)
  const proof = proofLength === 0 ? undefined : await readExactly(socket, proofLength, signal)
  return { versions, proof }
}

async function readVerdict(socket: Duplex, signal: AbortSignal): Promise<{ status: number; version: number }> {
  const data = await readExactly(socket, 8, signal)
  checkMagic(data, VERDICT, 'verdict')
  return { status: data[5]!, version: data.readUInt16BE(6) }
}

/** The proof that the side playing `role` knows `secret`, bound to this TLS session. */
export function admissionProof(socket: TLSSocket, role: Role, secret: Uint8Array): Buffer {
  const keyingMaterial = socket.exportKeyingMaterial(32, EXPORTER_LABEL, Buffer.alloc(0))
  return createHmac('sha256', secret).update(ROLE_LABEL[role]).update(keyingMaterial).digest()
}

/** The remote's node id from the certificate it presented, or `undefined` when it presented no Ed25519 certificate. */
export function peerNodeId(socket: TLSSocket): string | undefined {
  const cert = socket.getPeerX509Certificate()
  if (cert?.publicKey.asymmetricKeyType !== 'ed25519') return undefined
  return nodeIdFromPublicKey(cert.publicKey)
}

/** The highest version both lists hold, or `undefined`. */
export function highestCommonVersion(ours: readonly number[], theirs: readonly number[]): number | undefined {
  const common = ours.filter((v) => theirs.includes(v))
  return common.length === 0 ? undefined : Math.max(...common)
}

function write(socket: Duplex, data: Buffer): void {
  // Tiny messages: the socket buffers them; a write error surfaces as the next read's failure.
  socket.write(data)
}

/**
 * Runs admission on a TLS socket whose handshake has completed. Resolves when
 * both sides admitted each other; otherwise rejects with `ERR_PEER_UNAUTHORIZED`,
 * `ERR_PROTOCOL_VERSION` or `ERR_PROTOCOL` (the caller closes the socket).
 * `signal` bounds it in time. No byte past the peer's verdict is consumed.
 */
export async function admit(socket: TLSSocket, role: Role, policy: AdmissionPolicy, signal: AbortSignal): Promise<Admitted> {
  const remoteRole: Role = role === 'inbound' ? 'outbound' : 'inbound'
  const remoteNodeId = peerNodeId(socket)
  const ourProof = policy.secret === undefined ? undefined : admissionProof(socket, role, policy.secret)
  write(socket, encodeHello({ versions: [...policy.versions], proof: ourProof }))

  const hello = await readHello(socket, signal)
  const version = highestCommonVersion(policy.versions, hello.versions)
  let refusal: P2PError | undefined
  if (remoteNodeId === undefined) {
    refusal = new PeerUnauthorizedError('the peer presented no Ed25519 certificate')
  } else if (policy.expectedNodeId !== undefined && remoteNodeId !== policy.expectedNodeId) {
    refusal = new PeerUnauthorizedError(`the peer is ${remoteNodeId}, not the expected ${policy.expectedNodeId}`)
  } else if (!isAdmitted(socket, remoteRole, remoteNodeId, hello.proof, policy)) {
    refusal = new PeerUnauthorizedError(`the peer ${remoteNodeId} proved no cluster secret and is not on the allow-list`)
  } else if (version === undefined) {
    refusal = new ProtocolVersionError(`no common protocol version: we speak ${policy.versions.join(',')}, the peer ${hello.versions.join(',')}`)
  }
  const status = refusal === undefined ? Status.Ok : refusal.code === 'ERR_PROTOCOL_VERSION' ? Status.NoCommonVersion : Status.Unauthorized
  write(socket, encodeVerdict(status, version ?? 0))
  if (refusal !== undefined) throw refusal

  const verdict = await readVerdict(socket, signal)
  if (verdict.status === Status.NoCommonVersion) throw new ProtocolVersionError('the peer found no common protocol version')
  if (verdict.status !== Status.Ok) throw new PeerUnauthorizedError('the peer refused us')
  if (verdict.version !== version) throw new ProtocolError(`the peer chose version ${verdict.version}, we chose ${version}`)
  return { remoteNodeId: remoteNodeId!, version: version }
}

function isAdmitted(socket: TLSSocket, remoteRole: Role, remoteNodeId: string, proof: Buffer | undefined, policy: AdmissionPolicy): boolean {
  if (policy.secret !== undefined && proof !== undefined) {
    const expected = admissionProof(socket, remoteRole, policy.secret)
    if (proof.length === expected.length && timingSafeEqual(proof, expected)) return true
  }
  return policy.allowList.has(remoteNodeId)
}
