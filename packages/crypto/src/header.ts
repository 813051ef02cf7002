// The age v1 header: version line, recipient stanzas, MAC line.
import { createHmac, timingSafeEqual } from 'node:crypto'
import { decodeBase64, encodeBase64 } from './base64.js'
import { FormatError, HeaderMacError, HeaderTooLargeError, InvalidArgumentError, TooManyStanzasError, TruncatedError } from './errors.js'
import { hkdfSha256 } from './hkdf.js'
import type { ByteReader } from './reader.js'

export const VERSION_LINE = 'age-encryption.org/v1'
const MAC_PREFIX = '---'
const EMPTY = new Uint8Array(0)
/** Default largest header accepted: far above any real one (a post-quantum stanza is ~1.5 KiB). */
export const DEFAULT_MAX_HEADER_BYTES = 1024 * 1024
/**
 * Default most recipient stanzas a header may hold. dcas writes one per recipient (the
 * owner and a few recovery recipients); each stanza may cost an X25519 operation per
 * identity, so this bounds what a hostile header makes the decryptor do.
 */
export const DEFAULT_MAX_STANZAS = 64
const STANZAS_LIMIT = 65_536
const HEADER_BYTES_MIN = 64
const HEADER_BYTES_LIMIT = 16 * 1024 * 1024

/** The bounds a header is read within. */
export interface HeaderLimits {
  readonly maxStanzas: number
  readonly maxHeaderBytes: number
}

function checkLimit(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`)
  }
  return value
}

/** The limits of `options`, checked (`ERR_INVALID_ARGUMENT`), defaults filled in. */
export function headerLimits(options: { maxStanzas?: number | undefined; maxHeaderBytes?: number | undefined }): HeaderLimits {
  return {
    maxStanzas: checkLimit('maxStanzas', options.maxStanzas, DEFAULT_MAX_STANZAS, 1, STANZAS_LIMIT),
    maxHeaderBytes: checkLimit('maxHeaderBytes', options.maxHeaderBytes, DEFAULT_MAX_HEADER_BYTES, HEADER_BYTES_MIN, HEADER_BYTES_LIMIT),
  }
}

const DEFAULT_LIMITS: HeaderLimits = { maxStanzas: DEFAULT_MAX_STANZAS, maxHeaderBytes: DEFAULT_MAX_HEADER_BYTES }

function tooManyStanzas(maxStanzas: number): TooManyStanzasError {
  return new TooManyStanzasError(`the header holds more than ${maxStanzas} recipient stanzas (maxStanzas)`)
}

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

/** Parses the header bytes (which end with the MAC line's newline); more than `maxStanzas` stanzas fail. */
export function parseHeader(bytes: Uint8Array, maxStanzas = DEFAULT_MAX_STANZAS): Header {
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
      if (stanzas.length >= maxStanzas) throw tooManyStanzas(maxStanzas)
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
const GREATER = 0x3e
const VERSION_BYTES = Buffer.from(`${VERSION_LINE}\n`, 'latin1')

/**
 * Reads the header off the reader: up to the newline that ends the first line
 * starting with `---`. Fails fast on a wrong version line, past `maxHeaderBytes`
 * and at the first stanza line beyond `maxStanzas` (before parsing anything).
 */
export async function readHeader(reader: ByteReader, limits: HeaderLimits = DEFAULT_LIMITS): Promise<Header> {
  const { maxStanzas, maxHeaderBytes } = limits
  await reader.fill(VERSION_BYTES.length)
  const prefix = Math.min(reader.length, VERSION_BYTES.length)
  for (let i = 0; i < prefix; i++) {
    if (reader.byteAt(i) !== VERSION_BYTES[i]) {
      const first = reader.takeBytes(Math.min(reader.length, 64))
      const line = Buffer.from(first).toString('latin1').split('\n')[0] ?? ''
      throw versionError(line)
    }
  }
  // Scan for "\n---" then the newline ending that line, one piece at a time,
  // counting the lines that open a stanza ("->") on the way.
  let scanned = 0
  let lineStart = true
  let dashes = 0
  let inMacLine = false
  let stanzaLines = 0
  const visit = (b: number): boolean => {
    if (inMacLine) return b === NEWLINE
    if (b === NEWLINE) {
      lineStart = true
      dashes = 0
    } else if (lineStart && b === DASH) {
      if (++dashes === 3) inMacLine = true
    } else {
      if (lineStart && dashes === 1 && b === GREATER && ++stanzaLines > maxStanzas) throw tooManyStanzas(maxStanzas)
      lineStart = false
    }
    return false
  }
  for (;;) {
    const end = reader.findFrom(scanned, visit)
    if (end >= 0 && end < maxHeaderBytes) return parseHeader(reader.takeBytes(end + 1), maxStanzas)
    scanned = reader.length
    if (end >= 0 || scanned > maxHeaderBytes) {
      throw new HeaderTooLargeError(`the header is longer than ${maxHeaderBytes} bytes (maxHeaderBytes)`)
    }
    if (!(await reader.pull())) {
      throw new TruncatedError(reader.length === 0 ? 'the input is empty' : 'the input ends inside the header')
    }
  }
}
