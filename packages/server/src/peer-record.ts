// Peer records: what a node says of itself to the cluster (addresses, zone, capacity, whether it is
// leaving, when it started and when it said so), signed with its Ed25519 identity, whose public key
// hashes to its node id. Any node may relay a record; nobody but the node it describes can make or
// alter one. Every field read from a peer is checked here.
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto'
import { PeerError } from './errors.js'
import { isHex64 } from './wire.js'

/** A node's signed description of itself. */
export interface PeerRecord {
  /** Lowercase hex SHA-256 of `publicKey` (DER): the node id its TLS certificate proves. */
  nodeId: string
  /** The node's Ed25519 public key, SPKI DER, base64. */
  publicKey: string
  /** Where it may be dialled (`host:port`); none: only by the nodes it dials. */
  addresses: string[]
  /** Its failure-domain label. */
  zone?: string
  /** Bytes it offers to hold for others. */
  capacity?: number
  /** `leaving`: it is being drained and holds nothing new. */
  state: 'active' | 'leaving'
  /** When its process started (its clock, ms): a new value means it restarted. */
  startedAt: number
  /** When it signed this record (its clock, ms): a newer record replaces an older one. */
  issuedAt: number
  /** Ed25519 signature over the other fields, base64. */
  signature: string
}

/** The fields a node signs. */
export type PeerRecordFields = Omit<PeerRecord, 'nodeId' | 'publicKey' | 'signature'>

/** Most addresses in one record. */
export const MAX_RECORD_ADDRESSES = 8
/** Longest address in a record. */
const MAX_ADDRESS_LENGTH = 262
/** How far in the future a record's times may lie (clock skew between nodes). */
export const MAX_CLOCK_SKEW_MS = 10 * 60_000
/** A zone label: 1 to 64 characters of letters, digits, `.`, `_`, `:` and `-`. */
const ZONE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/
const ADDRESS = /^(?:\[[0-9A-Fa-f:.]+\]|[^:[\]\s]+):\d{1,5}$/
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/
const DOMAIN = 'dcas-peer-record-v1\n'

/** Whether a value is a valid zone label. */
export const isZone = (value: unknown): value is string => typeof value === 'string' && ZONE.test(value)

/** Whether a value is a `host:port` address a record may carry. */
export const isRecordAddress = (value: unknown): value is string => typeof value === 'string' && value.length <= MAX_ADDRESS_LENGTH && ADDRESS.test(value) && Number(value.slice(value.lastIndexOf(':') + 1)) <= 65535

/** The bytes a record's signature covers. */
function signedBytes(nodeId: string, publicKey: string, f: PeerRecordFields): Buffer {
  return Buffer.from(DOMAIN + JSON.stringify([nodeId, publicKey, f.addresses, f.zone ?? null, f.capacity ?? null, f.state, f.startedAt, f.issuedAt]), 'utf8')
}

/** A node's signing key and the public key that names it. */
export interface RecordSigner {
  nodeId: string
  publicKey: string
  privateKey: KeyObject
}

/** The signer of an Ed25519 private key. */
export function signerOf(privateKey: KeyObject): RecordSigner {
  const der = createPublicKey(privateKey).export({ type: 'spki', format: 'der' })
  return { nodeId: createHash('sha256').update(der).digest('hex'), publicKey: der.toString('base64'), privateKey }
}

/** Signs a record of this node. */
export function signRecord(signer: RecordSigner, fields: PeerRecordFields): PeerRecord {
  const signature = sign(null, signedBytes(signer.nodeId, signer.publicKey, fields), signer.privateKey).toString('base64')
  return { nodeId: signer.nodeId, publicKey: signer.publicKey, ...fields, signature }
}

/** Public keys already checked against their node id (a node id names one key for good). */
const keys = new Map<string, KeyObject>()
const MAX_CACHED_KEYS = 4096

function publicKeyOf(nodeId: string, publicKey: string): KeyObject {
  const cached = keys.get(nodeId)
  if (cached !== undefined) return cached
  if (publicKey.length > 128 || !BASE64.test(publicKey)) throw new PeerError('a peer record\'s public key is malformed')
  const der = Buffer.from(publicKey, 'base64')
  if (createHash('sha256').update(der).digest('hex') !== nodeId) throw new PeerError('a peer record\'s public key does not hash to its node id')
  let key: KeyObject
  try {
    key = createPublicKey({ key: der, format: 'der', type: 'spki' })
  } catch (err) {
    throw new PeerError('a peer record\'s public key does not parse', undefined, { cause: err })
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new PeerError('a peer record\'s public key is not Ed25519')
  if (keys.size >= MAX_CACHED_KEYS) keys.delete(keys.keys().next().value!)
  keys.set(nodeId, key)
  return key
}

/** A non-negative safe integer. */
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0

/**
 * Checks every field of a record a peer sent, and its signature by the node it describes; resolves to
 * the record with only its known fields. Throws a {@link PeerError} otherwise.
 */
export function verifyRecord(value: unknown, now = Date.now()): PeerRecord {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new PeerError('a peer record is not an object')
  const r = value as Record<string, unknown>
  if (!isHex64(r.nodeId)) throw new PeerError('a peer record\'s node id is malformed')
  if (typeof r.publicKey !== 'string' || typeof r.signature !== 'string') throw new PeerError('a peer record lacks its key or signature')
  if (!Array.isArray(r.addresses) || r.addresses.length > MAX_RECORD_ADDRESSES || !r.addresses.every(isRecordAddress)) throw new PeerError('a peer record\'s addresses are malformed')
  if (r.zone !== undefined && !isZone(r.zone)) throw new PeerError('a peer record\'s zone is malformed')
  if (r.capacity !== undefined && !isTime(r.capacity)) throw new PeerError('a peer record\'s capacity is malformed')
  if (r.state !== 'active' && r.state !== 'leaving') throw new PeerError('a peer record\'s state is malformed')
  if (!isTime(r.startedAt) || !isTime(r.issuedAt) || r.startedAt > r.issuedAt) throw new PeerError('a peer record\'s times are malformed')
  if (r.issuedAt > now + MAX_CLOCK_SKEW_MS) throw new PeerError('a peer record was issued in the future')
  if (r.signature.length > 100 || !BASE64.test(r.signature)) throw new PeerError('a peer record\'s signature is malformed')
  const fields: PeerRecordFields = {
    addresses: [...r.addresses],
    ...(r.zone === undefined ? {} : { zone: r.zone }),
    ...(r.capacity === undefined ? {} : { capacity: r.capacity }),
    state: r.state,
    startedAt: r.startedAt,
    issuedAt: r.issuedAt,
  }
  const key = publicKeyOf(r.nodeId, r.publicKey)
  if (!verify(null, signedBytes(r.nodeId, r.publicKey, fields), key, Buffer.from(r.signature, 'base64'))) throw new PeerError('a peer record\'s signature does not verify')
  return { nodeId: r.nodeId, publicKey: r.publicKey, ...fields, signature: r.signature }
}
