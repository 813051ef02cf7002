// The age v1 header: version line, recipient stanzas, MAC line.
import { createHmac, timingSafeEqual } from 'node:crypto'
import { decodeBase64, encodeBase64 } from './base64.js'
import { FormatError, HeaderMacError, TruncatedError } from './errors.js'
import { hkdfSha256 } from './hkdf.js'
import type { ByteReader } from './reader.js'

export const VERSION_LINE = 'age-encryption.org/v1'
const MAC_PREFIX = '---'
const EMPTY = new Uint8Array(0)
/** Largest header accepted: far above any real one (a post-quantum stanza is ~1.5 KiB). */
export const MAX_HEADER_BYTES = 1024 * 1024

/** One recipient stanza: `-> type args…` and its body. */
export interface Stanza {
  readonly type: string
  readonly args: readonly string[]
  readonly body: Uint8Array
}

/** A parsed header. */
export interface Header {
  readonly stanzas: readonly Stanza[]
  readonly mac: Uint8Array
  /** The bytes the MAC covers: everything up to and including `---`. */
  readonly macInput: Uint8Array
  /** Length of the whole header in bytes, MAC line included. */
  readonly length: number
}

function isArgument(s: string): boolean {
  if (s.length === 0) return false
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 33 || c > 126) return false
  }
  return true
}

/** Encodes a stanza, body wrapped at 64 columns and ended by a short (possibly empty) line. */
function encodeStanza(stanza: Stanza): string {
  let out = `-> ${[stanza.type, ...stanza.args].join(' ')}\n`
  const body = encodeBase64(stanza.body)
  for (let i = 0; i <= body.length; i += 64) out += `${body.slice(i, i + 64)}\n`
  return out
}

/** The header MAC key: HKDF-SHA256(file key, no salt, "header"). */
function macKey(fileKey: Uint8Array): Buffer {
  return hkdfSha256(fileKey, EMPTY, 'header', 32)
}

/** Serializes a header for `stanzas` and MACs it with the file key. */
export function encodeHeader(stanzas: readonly Stanza[], fileKey: Uint8Array): Buffer {
  let text = `${VERSION_LINE}\n`
  for (const stanza of stanzas) text += encodeStanza(stanza)
  text += MAC_PREFIX
  const mac = createHmac('sha256', macKey(fileKey)).update(text, 'latin1').digest()
  return Buffer.from(`${text} ${encodeBase64(mac)}\n`, 'latin1')
}

/** Throws {@link HeaderMacError} unless the header's MAC verifies under the file key. */
export function verifyHeaderMac(header: Header, fileKey: Uint8Array): void {
  const expected = createHmac('sha256', macKey(fileKey)).update(header.macInput).digest()
  if (!timingSafeEqual(expected, header.mac)) throw new HeaderMacError()
}

/** Parses the header bytes (which end with the MAC line's newline). */
export function parseHeader(bytes: Uint8Array): Header {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1')
  const lines = text.split('\n')
  // The last element is the empty string after the MAC line's newline.
  lines.pop()
  if (lines[0] !== VERSION_LINE) throw versionError(lines[0] ?? '')
  const stanzas: Stanza[] = []
  let i = 1
  let offset = VERSION_LINE.length + 1
  for (;;) {
    const line = lines[i]
    if (line === undefined) throw new FormatError('the header has no MAC line')
    if (line.startsWith('-> ')) {
      const args = line.slice(3).split(' ')
      if (!args.every(isArgument)) throw new FormatError(`stanza ${stanzas.length + 1}: malformed arguments`)
      let body = ''
      offset += line.length + 1
      for (;;) {
        const bodyLine = lines[++i]
        if (bodyLine === undefined || bodyLine.startsWith('-')) {
          throw new FormatError(`stanza ${stanzas.length + 1}: the body does not end with a short line`)
        }
        if (bodyLine.length > 64) throw new FormatError(`stanza ${stanzas.length + 1}: a body line is longer than 64 columns`)
        body += bodyLine
        offset += bodyLine.length + 1
        if (bodyLine.length < 64) break
      }
      const decoded = decodeBase64(body)
      if (decoded === undefined) throw new FormatError(`stanza ${stanzas.length + 1}: the body is not canonical base64`)
      stanzas.push({ type: args[0]!, args: args.slice(1), body: decoded })
      i++
      continue
    }
    if (line.startsWith(`${MAC_PREFIX} `) && i === lines.length - 1) {
      if (stanzas.length === 0) throw new FormatError('the header has no recipient stanza')
      const mac = decodeBase64(line.slice(MAC_PREFIX.length + 1))
      if (mac?.length !== 32) throw new FormatError('the header MAC is not 32 bytes of canonical base64')
      return {
        stanzas,
        mac,
        macInput: bytes.subarray(0, offset + MAC_PREFIX.length),
        length: bytes.length,
      }
    }
    throw new FormatError(`header line ${i + 1} is neither a stanza nor the MAC line`)
  }
}

function versionError(line: string): FormatError {
  if (line.startsWith('age-encryption.org/')) {
    return new FormatError(`unsupported age version ${JSON.stringify(line.slice(0, 40))}`)
  }
  return new FormatError('not an age file: the first line is not age-encryption.org/v1')
}

const NEWLINE = 0x0a
const DASH = 0x2d
const VERSION_BYTES = Buffer.from(`${VERSION_LINE}\n`, 'latin1')

/**
 * Reads the header off the reader: up to the newline that ends the first line
 * starting with `---`. Fails fast on a wrong version line and past {@link MAX_HEADER_BYTES}.
 */
export async function readHeader(reader: ByteReader): Promise<Header> {
  await reader.fill(VERSION_BYTES.length)
  const prefix = Math.min(reader.length, VERSION_BYTES.length)
  for (let i = 0; i < prefix; i++) {
    if (reader.byteAt(i) !== VERSION_BYTES[i]) {
      const first = reader.takeBytes(Math.min(reader.length, 64))
      const line = Buffer.from(first).toString('latin1').split('\n')[0] ?? ''
      throw versionError(line)
    }
  }
  // Scan for "\n---" then the newline ending that line, one piece at a time.
  let scanned = 0
  let lineStart = true
  let dashes = 0
  let inMacLine = false
  const visit = (b: number): boolean => {
    if (inMacLine) return b === NEWLINE
    if (b === NEWLINE) {
      lineStart = true
      dashes = 0
    } else if (lineStart && b === DASH) {
      if (++dashes === 3) inMacLine = true
    } else {
      lineStart = false
    }
    return false
  }
  for (;;) {
    const end = reader.findFrom(scanned, visit)
    if (end >= 0 && end < MAX_HEADER_BYTES) return parseHeader(reader.takeBytes(end + 1))
    scanned = reader.length
    if (end >= 0 || scanned > MAX_HEADER_BYTES) {
      throw new FormatError(`the header is longer than ${MAX_HEADER_BYTES} bytes`)
    }
    if (!(await reader.pull())) {
      throw new TruncatedError(reader.length === 0 ? 'the input is empty' : 'the input ends inside the header')
    }
  }
}
