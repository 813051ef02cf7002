// Bech32 (BIP 173, not Bech32m) as age uses it for `age1…` recipients and
// `AGE-SECRET-KEY-1…` identities: no 90-character limit, case kept in the HRP.

const CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l'
const GENERATOR = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3] as const
const CHARSET_REV = new Int8Array(128).fill(-1)
for (let i = 0; i < CHARSET.length; i++) CHARSET_REV[CHARSET.charCodeAt(i)] = i

/** Why a string is not valid Bech32; the caller wraps it in its own typed error. */
export class Bech32Error extends Error {}

function polymod(values: Iterable<number>): number {
  let chk = 1
  for (const v of values) {
    const top = chk >>> 25
    chk = ((chk & 0x1ffffff) << 5) ^ v
    for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= GENERATOR[i]!
  }
  return chk >>> 0
}

function* hrpExpand(hrp: string): Generator<number> {
  for (let i = 0; i < hrp.length; i++) yield hrp.charCodeAt(i) >> 5
  yield 0
  for (let i = 0; i < hrp.length; i++) yield hrp.charCodeAt(i) & 31
}

function* concat(...parts: Iterable<number>[]): Generator<number> {
  for (const part of parts) yield* part
}

function convertBits(data: ArrayLike<number>, from: number, to: number, pad: boolean): number[] {
  let acc = 0
  let bits = 0
  const out: number[] = []
  const maxv = (1 << to) - 1
  for (let i = 0; i < data.length; i++) {
    acc = (acc << from) | data[i]!
    bits += from
    while (bits >= to) {
      bits -= to
      out.push((acc >>> bits) & maxv)
    }
    acc &= (1 << bits) - 1
  }
  if (pad) {
    if (bits > 0) out.push((acc << (to - bits)) & maxv)
  } else if (bits >= from) {
    throw new Bech32Error('too many padding bits')
  } else if (acc !== 0) {
    throw new Bech32Error('non-zero padding bits')
  }
  return out
}

function checkHrp(hrp: string): void {
  if (hrp.length === 0) throw new Bech32Error('empty human-readable part')
  for (let i = 0; i < hrp.length; i++) {
    const c = hrp.charCodeAt(i)
    if (c < 33 || c > 126) throw new Bech32Error('invalid character in human-readable part')
  }
}

/** Encodes `data` under `hrp`; the result is in the case of `hrp` (all upper or all lower). */
export function bech32Encode(hrp: string, data: Uint8Array): string {
  checkHrp(hrp)
  const upper = hrp !== hrp.toLowerCase()
  if (upper && hrp !== hrp.toUpperCase()) throw new Bech32Error('mixed-case human-readable part')
  const lowerHrp = hrp.toLowerCase()
  const words = convertBits(data, 8, 5, true)
  const mod = polymod(concat(hrpExpand(lowerHrp), words, [0, 0, 0, 0, 0, 0])) ^ 1
  let out = lowerHrp + '1'
  for (const w of words) out += CHARSET[w]
  for (let i = 0; i < 6; i++) out += CHARSET[(mod >>> (5 * (5 - i))) & 31]
  return upper ? out.toUpperCase() : out
}

/** Decodes a Bech32 string; `hrp` is returned in the case it was written in. */
export function bech32Decode(s: string): { hrp: string; data: Uint8Array } {
  const lower = s.toLowerCase()
  if (lower !== s && s.toUpperCase() !== s) throw new Bech32Error('mixed case')
  const pos = s.lastIndexOf('1')
  if (pos < 1) throw new Bech32Error('missing separator or human-readable part')
  if (pos + 7 > s.length) throw new Bech32Error('too short for a checksum')
  const hrp = s.slice(0, pos)
  checkHrp(hrp)
  const words = new Uint8Array(s.length - pos - 1)
  for (let i = 0; i < words.length; i++) {
    const c = lower.charCodeAt(pos + 1 + i)
    const v = c < 128 ? CHARSET_REV[c]! : -1
    if (v < 0) throw new Bech32Error('invalid character in data part')
    words[i] = v
  }
  if (polymod(concat(hrpExpand(hrp.toLowerCase()), words)) !== 1) throw new Bech32Error('invalid checksum')
  return { hrp, data: Uint8Array.from(convertBits(words.subarray(0, words.length - 6), 5, 8, false)) }
}
