// CPace over ristretto255 (after draft-irtf-cfrg-cpace), the balanced PAKE that admission
// runs: both sides derive a generator from the stretched cluster secret and this TLS
// session, exchange y·G, and confirm the shared point. A share reveals nothing about the
// secret; a confirmation can be checked only with the shared point, which needs one of
// the two scalars. A stranger gets one online guess per connection, nothing to test offline.
import { createHash, createHmac, randomBytes } from 'node:crypto'
import { ristretto255, ristretto255_hasher } from '@noble/curves/ed25519.js'

const Point = ristretto255.Point
type Point = InstanceType<typeof Point>

/** Bytes of an encoded share and of a confirmation tag. */
export const SHARE_BYTES = 32
export const TAG_BYTES = 32

const DSI = Buffer.from('CPaceRistretto255', 'latin1')
const DSI_ISK = Buffer.from('CPaceRistretto255_ISK', 'latin1')
const CHANNEL_ID = Buffer.from('dcas admission v2', 'latin1')
const CONFIRM_LABEL = { outbound: 'dcas admission v2 confirm: dialler', inbound: 'dcas admission v2 confirm: listener' } as const
/** SHA-512's input block: the generator string pads the secret to fill it, as the draft does. */
const HASH_BLOCK = 128

function lengthPrefixed(...parts: Uint8Array[]): Buffer {
  const out: Buffer[] = []
  for (const part of parts) {
    // LEB128 length, as the draft's lv_cat: every length here is below 2^14.
    const n = part.length
    out.push(n < 128 ? Buffer.from([n]) : Buffer.from([(n & 0x7f) | 0x80, n >> 7]), Buffer.from(part.buffer, part.byteOffset, part.byteLength))
  }
  return Buffer.concat(out)
}

/** The session's generator: SHA-512 of (DSI, secret, zero padding, channel id, session id), mapped onto ristretto255. */
function generator(prs: Uint8Array, sessionId: Uint8Array): Point {
  const zeroPad = Math.max(0, HASH_BLOCK - (DSI.length + 1) - (prs.length + 1) - 1)
  const input = lengthPrefixed(DSI, prs, Buffer.alloc(zeroPad), CHANNEL_ID, sessionId)
  return ristretto255_hasher.deriveToCurve!(createHash('sha512').update(input).digest())
}

function randomScalar(): bigint {
  // 64 random bytes reduced modulo the group order: bias below 2^-250.
  const bytes = randomBytes(64)
  let n = 0n
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]!)
  const y = n % Point.Fn.ORDER
  return y === 0n ? 1n : y
}

/** One side's CPace state for one TLS session. */
export interface CpaceSide {
  /** Our share y·G, 32 bytes, sent in our hello. */
  readonly share: Buffer
  /**
   * The key both sides share once the remote's share arrived, or `undefined` when that
   * share is not a valid ristretto255 encoding or gives the identity (a hostile peer).
   * `transcript` orders both hellos dialler first, so both sides hash the same bytes.
   */
  sharedKey(remoteShare: Uint8Array, transcript: Uint8Array): Buffer | undefined
}

/**
 * Starts CPace for this session: `prs` is the stretched cluster secret, `sessionId`
 * from the TLS exporter. `y` (tests only) fixes the secret scalar.
 */
export function startCpace(prs: Uint8Array, sessionId: Uint8Array, y: bigint = randomScalar()): CpaceSide {
  const share = Buffer.from(generator(prs, sessionId).multiply(y).toBytes())
  return {
    share,
    sharedKey(remoteShare, transcript) {
      let remote: Point
      try {
        remote = Point.fromBytes(remoteShare)
      } catch {
        return undefined
      }
      const k = remote.multiply(y)
      if (k.is0()) return undefined
      return createHash('sha512').update(lengthPrefixed(DSI_ISK, sessionId, k.toBytes())).update(transcript).digest()
    },
  }
}

/** The confirmation the side playing `role` sends: it proves that side holds the shared key. */
export function confirmation(sharedKey: Uint8Array, role: 'inbound' | 'outbound'): Buffer {
  return createHmac('sha256', sharedKey).update(CONFIRM_LABEL[role]).digest()
}

/** Both hellos as CPace hashes them: dialler's first, each length-prefixed. */
export function transcriptOf(diallerHello: Uint8Array, listenerHello: Uint8Array): Buffer {
  return lengthPrefixed(diallerHello, listenerHello)
}
