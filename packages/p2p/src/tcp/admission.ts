// Admission: right after the TLS 1.3 handshake and before any application byte,
// each side sends a hello (protocol versions, its CPace share), then a confirmation
// of the key CPace gave (only once it holds the other's share), then a verdict.
// Every read here is bounded in size; the caller bounds it in time through `signal`.
//
//   hello   = "dcas" | 0x01 | n (1..16) | n × version (u16 BE) | 0x00 | shareLength (0 or 32) | share
//   confirm = "dcas" | 0x03 | tagLength (0 or 32) | tag
//   verdict = "dcas" | 0x02 | status (0 ok, 1 unauthorized, 2 no common version) | version (u16 BE)
//
// The 0x00 is where protocol 1 put the length of its proof, HMAC(secret, role | keying
// material): a verifier anyone who completed TLS could test guesses of the secret
// against offline. Protocol 2 never sends one and refuses a peer that speaks only 1.
// With CPace (./cpace.ts) a share reveals nothing about the secret, and a confirmation
// can be checked only by whoever holds the shared point: an attacker gets one online
// guess per connection, the guess its own share committed to.
import { timingSafeEqual } from 'node:crypto'
import type { Duplex } from 'node:stream'
import type { TLSSocket } from 'node:tls'
import { type P2PError, PeerUnauthorizedError, ProtocolError, ProtocolVersionError } from '../errors.js'
import { nodeIdFromPublicKey } from '../identity/identity.js'
import { confirmation, SHARE_BYTES, startCpace, TAG_BYTES, transcriptOf } from './cpace.js'

/** Protocol versions this implementation speaks, oldest first. Version 1 (an HMAC proof in the hello) is refused. */
export const PROTOCOL_VERSIONS: readonly number[] = [2]

const MAGIC = Buffer.from('dcas', 'latin1')
const HELLO = 0x01
const VERDICT = 0x02
const CONFIRM = 0x03
const MAX_VERSIONS = 16
/** The only version whose hello carries a proof instead of a share. */
const LEGACY_VERSION = 1
const LEGACY_PROOF_LENGTH = 32
const EXPORTER_LABEL = 'EXPORTER-dcas-admission'

/** A verdict's status byte. */
export const Status = { Ok: 0, Unauthorized: 1, NoCommonVersion: 2 } as const
/** One of {@link Status}. */
export type Status = (typeof Status)[keyof typeof Status]

/** Which role this side plays in the TLS session. */
export type Role = 'inbound' | 'outbound'

/** What a side requires of its peer. */
export interface AdmissionPolicy {
  /** The cluster secret, stretched (`stretchSecret`); absent, only the allow-list admits. */
  prs?: Uint8Array
  /** Node ids admitted without the cluster secret. */
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
  /** How the remote was admitted: it proved the cluster secret, or its node id is on the allow-list. */
  by: 'secret' | 'allow-list'
}

/** A hello as read off the wire. */
export interface Hello {
  versions: number[]
  /** The sender's CPace share; absent when it holds no cluster secret (or speaks only protocol 1). */
  share: Buffer | undefined
}

/** Encodes a hello message. */
export function encodeHello(hello: Hello): Buffer {
  const { versions, share } = hello
  const out = Buffer.alloc(6 + 2 * versions.length + 2 + (share?.length ?? 0))
  MAGIC.copy(out, 0)
  out[4] = HELLO
  out[5] = versions.length
  versions.forEach((v, i) => out.writeUInt16BE(v, 6 + 2 * i))
  const at = 6 + 2 * versions.length
  out[at] = 0
  out[at + 1] = share?.length ?? 0
  share?.copy(out, at + 2)
  return out
}

/** Encodes a confirmation message (no tag: we hold no key to confirm). */
export function encodeConfirm(tag: Buffer | undefined): Buffer {
  const out = Buffer.alloc(6 + (tag?.length ?? 0))
  MAGIC.copy(out, 0)
  out[4] = CONFIRM
  out[5] = tag?.length ?? 0
  tag?.copy(out, 6)
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

/**
 * Reads one hello; malformed or out-of-bounds input fails with `ERR_PROTOCOL`. A hello
 * that lists no version above 1 is a protocol-1 hello: it is returned without its proof
 * (never read), for the caller to refuse on versions.
 */
export async function readHello(socket: Duplex, signal: AbortSignal): Promise<Hello> {
  const header = await readExactly(socket, 6, signal)
  checkMagic(header, HELLO, 'hello')
  const count = header[5]!
  if (count < 1 || count > MAX_VERSIONS) throw new ProtocolError(`a hello lists ${count} versions (1 to ${MAX_VERSIONS} allowed)`)
  const body = await readExactly(socket, 2 * count + 1, signal)
  const versions = Array.from({ length: count }, (_, i) => body.readUInt16BE(2 * i))
  const proofLength = body[2 * count]!
  if (versions.every((v) => v <= LEGACY_VERSION)) {
    if (proofLength !== 0 && proofLength !== LEGACY_PROOF_LENGTH) throw new ProtocolError(`a protocol-1 hello proof of ${proofLength} bytes`)
    return { versions, share: undefined }
  }
  if (proofLength !== 0) throw new ProtocolError('a protocol-2 hello carries a protocol-1 proof')
  const shareLength = (await readExactly(socket, 1, signal))[0]!
  if (shareLength !== 0 && shareLength !== SHARE_BYTES) throw new ProtocolError(`a hello share of ${shareLength} bytes`)
  const share = shareLength === 0 ? undefined : await readExactly(socket, shareLength, signal)
  return { versions, share }
}

/** Reads one confirmation: its tag, or `undefined` when the peer had no key to confirm. */
export async function readConfirm(socket: Duplex, signal: AbortSignal): Promise<Buffer | undefined> {
  const header = await readExactly(socket, 6, signal)
  checkMagic(header, CONFIRM, 'confirmation')
  const tagLength = header[5]!
  if (tagLength !== 0 && tagLength !== TAG_BYTES) throw new ProtocolError(`a confirmation tag of ${tagLength} bytes`)
  return tagLength === 0 ? undefined : readExactly(socket, tagLength, signal)
}

async function readVerdict(socket: Duplex, signal: AbortSignal): Promise<{ status: number; version: number }> {
  const data = await readExactly(socket, 8, signal)
  checkMagic(data, VERDICT, 'verdict')
  return { status: data[5]!, version: data.readUInt16BE(6) }
}

/** The session id both sides of this TLS session derive: its exported keying material. */
export function sessionIdOf(socket: TLSSocket): Buffer {
  return socket.exportKeyingMaterial(32, EXPORTER_LABEL, Buffer.alloc(0))
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

function versionRefusal(ours: readonly number[], theirs: readonly number[]): ProtocolVersionError {
  if (theirs.every((v) => v <= LEGACY_VERSION)) {
    return new ProtocolVersionError(
      `the peer speaks only admission protocol ${theirs.join(',')}, whose proof lets anyone who connects test guesses of the cluster secret offline; upgrade it (we speak ${ours.join(',')})`,
    )
  }
  return new ProtocolVersionError(`no common protocol version: we speak ${ours.join(',')}, the peer ${theirs.join(',')}`)
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
  const cpace = policy.prs === undefined ? undefined : startCpace(policy.prs, sessionIdOf(socket))
  const ourHello = encodeHello({ versions: [...policy.versions], share: cpace?.share })
  write(socket, ourHello)

  const hello = await readHello(socket, signal)
  const version = highestCommonVersion(policy.versions, hello.versions)
  if (version === undefined) {
    write(socket, encodeVerdict(Status.NoCommonVersion, 0))
    throw versionRefusal(policy.versions, hello.versions)
  }

  // Only now, holding the peer's share, do we confirm: our tag commits to the key its share gives.
  let expectedTag: Buffer | undefined
  let ourTag: Buffer | undefined
  if (cpace !== undefined && hello.share !== undefined) {
    const theirHello = encodeHello(hello)
    const transcript = role === 'outbound' ? transcriptOf(ourHello, theirHello) : transcriptOf(theirHello, ourHello)
    const key = cpace.sharedKey(hello.share, transcript)
    if (key === undefined) throw new ProtocolError('the peer sent a share that is not a valid ristretto255 element')
    ourTag = confirmation(key, role)
    expectedTag = confirmation(key, remoteRole)
  }
  write(socket, encodeConfirm(ourTag))
  const theirTag = await readConfirm(socket, signal)
  const provedSecret = expectedTag !== undefined && theirTag !== undefined && timingSafeEqual(theirTag, expectedTag)

  let refusal: P2PError | undefined
  if (remoteNodeId === undefined) {
    refusal = new PeerUnauthorizedError('the peer presented no Ed25519 certificate')
  } else if (policy.expectedNodeId !== undefined && remoteNodeId !== policy.expectedNodeId) {
    refusal = new PeerUnauthorizedError(`the peer is ${remoteNodeId}, not the expected ${policy.expectedNodeId}`)
  } else if (!provedSecret && !policy.allowList.has(remoteNodeId)) {
    refusal = new PeerUnauthorizedError(`the peer ${remoteNodeId} proved no cluster secret and is not on the allow-list`)
  }
  write(socket, encodeVerdict(refusal === undefined ? Status.Ok : Status.Unauthorized, version))
  if (refusal !== undefined) throw refusal

  const verdict = await readVerdict(socket, signal)
  if (verdict.status === Status.NoCommonVersion) throw new ProtocolVersionError('the peer found no common protocol version')
  if (verdict.status !== Status.Ok) throw new PeerUnauthorizedError('the peer refused us')
  if (verdict.version !== version) throw new ProtocolError(`the peer chose version ${verdict.version}, we chose ${version}`)
  return { remoteNodeId: remoteNodeId!, version, by: provedSecret ? 'secret' : 'allow-list' }
}
