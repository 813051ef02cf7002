// The age ASCII armor: strict PEM with the label AGE ENCRYPTED FILE, 64-column padded base64.
import { ArmorError } from './errors.js'
import type { ByteReader } from './reader.js'

export const ARMOR_BEGIN = '-----BEGIN AGE ENCRYPTED FILE-----'
export const ARMOR_END = '-----END AGE ENCRYPTED FILE-----'
const COLUMNS = 64
const BYTES_PER_LINE = (COLUMNS / 4) * 3
/** Whitespace allowed around the armor, at most this much on each side. */
export const MAX_ARMOR_WHITESPACE = 1024
const FULL_LINE = /^[A-Za-z0-9+/]{64}$/
const LAST_LINE = /^[A-Za-z0-9+/]*={0,2}$/
const DECODE_BATCH_LINES = 1024

const NEWLINE = 0x0a

/** Space, tab, CR or LF. */
export function isWhitespace(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0d || b === 0x0a
}

/** Reads one line (without its LF or CRLF) of at most `max` characters; `undefined` at the end of input. */
async function readLine(reader: ByteReader, max: number): Promise<{ line: string; eol: boolean } | undefined> {
  for (;;) {
    const end = reader.findFrom(0, (b) => b === NEWLINE)
    if (end > max + 1 || (end < 0 && reader.length > max + 1)) throw new ArmorError(`an armor line is longer than ${max} columns`)
    if (end >= 0) {
      let line = Buffer.from(reader.takeBytes(end + 1)).toString('latin1', 0, end)
      if (line.endsWith('\r')) line = line.slice(0, -1)
      return { line, eol: true }
    }
    if (!(await reader.pull())) {
      if (reader.length === 0) return undefined
      const line = Buffer.from(reader.takeBytes(reader.length)).toString('latin1')
      return { line: line.endsWith('\r') ? line.slice(0, -1) : line, eol: false }
    }
  }
}

/** Skips up to {@link MAX_ARMOR_WHITESPACE} bytes of whitespace; returns whether input follows. */
export async function skipWhitespace(reader: ByteReader): Promise<boolean> {
  let skipped = 0
  for (;;) {
    const at = reader.findFrom(0, (b) => !isWhitespace(b))
    if (at >= 0) {
      skipped += at
      reader.take(at)
    } else {
      skipped += reader.length
      reader.take(reader.length)
    }
    if (skipped > MAX_ARMOR_WHITESPACE) throw new ArmorError('too much whitespace around the armor')
    if (at >= 0) return true
    if (!(await reader.pull())) return false
  }
}

/** Decodes armored input into the binary age file, checking every line. */
export async function* dearmor(reader: ByteReader): AsyncGenerator<Uint8Array> {
  await skipWhitespace(reader)
  const begin = await readLine(reader, ARMOR_BEGIN.length)
  if (begin?.line !== ARMOR_BEGIN || !begin.eol) throw new ArmorError(`the armor does not start with ${ARMOR_BEGIN}`)
  let batch: string[] = []
  let pending: string | undefined
  for (;;) {
    const next = await readLine(reader, COLUMNS)
    if (next === undefined) throw new ArmorError(`the armor ends without ${ARMOR_END}`)
    const { line } = next
    if (line.startsWith('-----')) {
      if (line !== ARMOR_END) throw new ArmorError('malformed armor end line')
      if (pending !== undefined) {
        const bytes = decodeLastLine(pending)
        if (batch.length > 0) yield Buffer.from(batch.join(''), 'base64')
        yield bytes
      }
      break
    }
    if (line.length === 0) throw new ArmorError('empty line in the armor')
    if (pending !== undefined) {
      if (!FULL_LINE.test(pending)) throw new ArmorError('an armor line other than the last is not 64 base64 columns')
      batch.push(pending)
      if (batch.length === DECODE_BATCH_LINES) {
        yield Buffer.from(batch.join(''), 'base64')
        batch = []
      }
    }
    pending = line
  }
  if (await skipWhitespace(reader)) throw new ArmorError('data follows the armor end line')
}

function decodeLastLine(line: string): Buffer {
  if (line.length % 4 !== 0 || !LAST_LINE.test(line)) throw new ArmorError('the last armor line is not padded base64')
  const bytes = Buffer.from(line, 'base64')
  if (bytes.toString('base64') !== line) throw new ArmorError('the last armor line is not canonical base64')
  return bytes
}

/** Wraps binary age output in the armor, 64 columns per line. */
export async function* armor(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield Buffer.from(`${ARMOR_BEGIN}\n`, 'latin1')
  let carry: Uint8Array = new Uint8Array(0)
  for await (const piece of source) {
    const all = carry.length === 0 ? piece : Buffer.concat([carry, piece])
    const whole = all.length - (all.length % BYTES_PER_LINE)
    if (whole > 0) yield lines(all.subarray(0, whole))
    carry = all.slice(whole)
  }
  yield Buffer.from(`${carry.length > 0 ? linesText(carry) : ''}${ARMOR_END}\n`, 'latin1')
}

function linesText(bytes: Uint8Array): string {
  const b64 = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
  let out = ''
  for (let i = 0; i < b64.length; i += COLUMNS) out += `${b64.slice(i, i + COLUMNS)}\n`
  return out
}

function lines(bytes: Uint8Array): Buffer {
  return Buffer.from(linesText(bytes), 'latin1')
}
