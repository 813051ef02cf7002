// The self-signed X.509 certificate a node presents in its TLS handshakes, written directly in DER: an
// Ed25519 key names the node, and nothing else in the certificate is relied upon (peers are authenticated
// by admission, and each side checks the other's key, not a chain).
import { createPublicKey, sign, type KeyObject } from 'node:crypto'

/** DER: a tag, its length, its contents. */
function der(tag: number, ...contents: Uint8Array[]): Buffer {
  const body = Buffer.concat(contents)
  const n = body.length
  const length = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff]
  return Buffer.concat([Buffer.from([tag, ...length]), body])
}

const sequence = (...contents: Uint8Array[]): Buffer => der(0x30, ...contents)
/** AlgorithmIdentifier of Ed25519 (RFC 8410): the OID 1.3.101.112 and no parameters. */
const ED25519_ALGORITHM = sequence(Buffer.from([0x06, 0x03, 0x2b, 0x65, 0x70]))
/** The id-at-commonName OID, 2.5.4.3. */
const COMMON_NAME = Buffer.from([0x06, 0x03, 0x55, 0x04, 0x03])

/** A Name of one common name (UTF8String). */
const name = (commonName: string): Buffer => sequence(der(0x31, sequence(COMMON_NAME, der(0x0c, Buffer.from(commonName, 'utf8')))))

/** RFC 5280 Time: UTCTime through 2049, GeneralizedTime after, to the second, in UTC. */
function time(date: Date): Buffer {
  const digits = date.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:T]/g, '')
  const year = date.getUTCFullYear()
  return year < 2050 ? der(0x17, Buffer.from(digits.slice(2), 'ascii')) : der(0x18, Buffer.from(digits, 'ascii'))
}

/** What the certificate says. */
export interface CertificateFields {
  /** Subject and issuer common name. */
  commonName: string
  /** A positive serial number: at most 20 bytes, its first bit clear. */
  serial: Uint8Array
  notBefore: Date
  notAfter: Date
}

/** An X.509 v3 certificate of `privateKey`'s public key, signed by that key (Ed25519), as PEM. */
export function selfSignedCertificate(privateKey: KeyObject, fields: CertificateFields): string {
  const { commonName, serial, notBefore, notAfter } = fields
  // INTEGER, minimally encoded: no leading zero byte before a byte whose first bit is clear.
  let start = 0
  while (start < serial.length - 1 && serial[start] === 0 && (serial[start + 1]! & 0x80) === 0) start++
  const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' })
  const tbs = sequence(
    der(0xa0, der(0x02, Buffer.from([2]))), // version: v3
    der(0x02, serial.subarray(start)),
    ED25519_ALGORITHM,
    name(commonName),
    sequence(time(notBefore), time(notAfter)),
    name(commonName),
    spki,
  )
  const signature = sign(null, tbs, privateKey)
  const certificate = sequence(tbs, ED25519_ALGORITHM, der(0x03, Buffer.from([0]), signature))
  const base64 = certificate.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '')
  return `-----BEGIN CERTIFICATE-----\n${base64}\n-----END CERTIFICATE-----\n`
}
