// The cluster secret before admission uses it: bytes, a strength check, and the stretching
// (scrypt, memory-hard) that turns it into the password CPace runs on.
import { scrypt } from 'node:crypto'

/** Shorter cluster secrets (in UTF-8 bytes) draw a warning from {@link clusterSecretWarning}. */
export const MIN_CLUSTER_SECRET_BYTES = 16

/** scrypt parameters: 2^15 × 8 × 128 B = 32 MiB and about 0.1 s, once per transport. */
const STRETCH = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } as const
const STRETCH_SALT = Buffer.from('dcas cluster secret v2', 'latin1')

/** A cluster secret as bytes: a string is taken as UTF-8. */
export function clusterSecretBytes(secret: string | Uint8Array): Uint8Array {
  return typeof secret === 'string' ? new TextEncoder().encode(secret) : Uint8Array.from(secret)
}

/**
 * Why a cluster secret is weak, or `undefined` when it is not. The rule: fewer than
 * {@link MIN_CLUSTER_SECRET_BYTES} (16) bytes. Admission gives nothing to test offline,
 * but whoever can connect gets one online guess per connection, so a short passphrase
 * (a word, a name) falls to a patient attacker; the secrets dcas generates are 32
 * random bytes. A weak secret still works: log the warning where operators see it.
 *
 * @example
 * ```ts
 * const warning = clusterSecretWarning(secret)
 * if (warning !== undefined) log.warn(warning)
 * ```
 */
export function clusterSecretWarning(secret: string | Uint8Array): string | undefined {
  const length = clusterSecretBytes(secret).length
  if (length >= MIN_CLUSTER_SECRET_BYTES) return undefined
  return `the cluster secret is ${length} bytes long: anyone who can reach the peer port may guess it online, one guess per connection; use at least ${MIN_CLUSTER_SECRET_BYTES} random characters (dcas generates 32 random bytes when none is given)`
}

/**
 * The password-related string CPace runs on: the cluster secret stretched with scrypt
 * (memory-hard), so that a stretched value that leaks from memory, or any future
 * weakness, costs an attacker 32 MiB and ~0.1 s per guess. Computed once per transport.
 */
export function stretchClusterSecret(secret: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(secret, STRETCH_SALT, 32, STRETCH, (err, key) => (err === null ? resolve(key) : reject(err)))
  })
}
