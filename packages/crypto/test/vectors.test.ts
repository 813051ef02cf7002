// Every test vector of the C2SP age test suite (npm `cctv-age`).
import * as cctv from 'cctv-age'
import { createHash } from 'node:crypto'
import { inflateSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { decrypt, decryptWithPassphrase } from '../src/index.js'

interface Vector {
  name: string
  expect: string
  identities: string[]
  passphrases: string[]
  payload: string | undefined
  file: Buffer
}

function parseVector(name: string, bytes: Uint8Array): Vector {
  const buf = Buffer.from(bytes)
  const split = buf.indexOf('\n\n')
  const meta = new Map<string, string[]>()
  for (const line of buf.subarray(0, split).toString('utf8').split('\n')) {
    const colon = line.indexOf(': ')
    const key = line.slice(0, colon)
    meta.set(key, [...(meta.get(key) ?? []), line.slice(colon + 2)])
  }
  let file = buf.subarray(split + 2)
  if (meta.get('compressed')?.[0] === 'zlib') file = inflateSync(file)
  return {
    name,
    expect: meta.get('expect')![0]!,
    identities: meta.get('identity') ?? [],
    passphrases: meta.get('passphrase') ?? [],
    payload: meta.get('payload')?.[0],
    file,
  }
}

const vectors = Object.entries(cctv as unknown as Record<string, Uint8Array>).map(([name, bytes]) => parseVector(name, bytes))
const isHybrid = (v: Vector): boolean => v.identities.some((id) => id.startsWith('AGE-SECRET-KEY-PQ-'))

// The code each expected outcome maps to, where the outcome has one code.
const CODES: Record<string, string> = {
  'no match': 'ERR_NO_MATCHING_IDENTITY',
  'HMAC failure': 'ERR_HEADER_MAC',
  'header failure': 'ERR_FORMAT',
  'armor failure': 'ERR_ARMOR',
}
// Vectors whose failure has a more precise code of ours than their category.
const PRECISE: Record<string, string> = {
  empty: 'ERR_TRUNCATED',
  armor_empty: 'ERR_TRUNCATED',
  stream_no_nonce: 'ERR_TRUNCATED',
  stream_short_nonce: 'ERR_TRUNCATED',
  scrypt_work_factor_23: 'ERR_WORK_FACTOR',
  scrypt_work_factor_overflow: 'ERR_WORK_FACTOR',
  // Without its BEGIN line the input cannot be told from a binary file that is not age.
  armor_garbage_leading: 'ERR_FORMAT',
  // Payload failures, each with its own code.
  armor_garbage_encoded: 'ERR_TRAILING_DATA',
  stream_bad_tag: 'ERR_CHUNK_AUTH',
  stream_bad_tag_second_chunk: 'ERR_CHUNK_AUTH',
  stream_bad_tag_second_chunk_full: 'ERR_CHUNK_AUTH',
  stream_last_chunk_empty: 'ERR_EMPTY_LAST_CHUNK',
  stream_missing_tag: 'ERR_TRUNCATED',
  stream_no_chunks: 'ERR_TRUNCATED',
  stream_no_final: 'ERR_TRUNCATED',
  stream_no_final_full: 'ERR_TRUNCATED',
  stream_no_final_two_chunks: 'ERR_TRUNCATED',
  stream_no_final_two_chunks_full: 'ERR_TRUNCATED',
  stream_short_chunk: 'ERR_TRUNCATED',
  stream_short_second_chunk: 'ERR_TRUNCATED',
  stream_trailing_garbage_long: 'ERR_TRAILING_DATA',
  stream_trailing_garbage_short: 'ERR_TRAILING_DATA',
  stream_two_final_chunks: 'ERR_TRAILING_DATA',
  stream_two_final_chunks_full: 'ERR_TRAILING_DATA',
  stream_two_final_chunks_second: 'ERR_TRAILING_DATA',
  // A short last chunk followed by another short one: only one split is tried, so it cannot verify.
  stream_two_final_chunks_short: 'ERR_CHUNK_AUTH',
}
const ANY_X25519 = 'AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0'

async function run(v: Vector): Promise<{ code: string; hash: string }> {
  const hash = createHash('sha256')
  const stream =
    v.passphrases.length > 0
      ? decryptWithPassphrase(v.file, v.passphrases[0]!)
      : decrypt(v.file, v.identities.length > 0 ? v.identities : [ANY_X25519])
  try {
    for await (const chunk of stream) hash.update(chunk)
    return { code: 'ok', hash: hash.digest('hex') }
  } catch (err) {
    return { code: String((err as { code?: unknown }).code ?? err), hash: hash.digest('hex') }
  }
}

describe('cctv-age test vectors', () => {
  it('are all present (the suite is not silently empty)', () => {
    expect(vectors.length).toBeGreaterThan(140)
  })

  for (const v of vectors.filter((v) => !isHybrid(v))) {
    it(`${v.name}: ${v.expect}`, async () => {
      const { code, hash } = await run(v)
      if (v.expect === 'success') {
        expect(code).toBe('ok')
      } else {
        const expected = PRECISE[v.name] ?? CODES[v.expect]
        expect(expected, 'every failing vector has an expected code').toBeDefined()
        expect(code).toBe(expected)
      }
      // Whatever plaintext was released before a failure must match the vector's payload hash.
      if (v.payload !== undefined) expect(hash).toBe(v.payload)
    })
  }

  // ML-KEM-768 is not in node:crypto on Node 20: post-quantum identities are refused up front, never misread.
  for (const v of vectors.filter(isHybrid)) {
    it(`${v.name}: refused as an unsupported post-quantum identity`, async () => {
      const { code, hash } = await run(v)
      expect(code).toBe('ERR_UNSUPPORTED')
      expect(hash).toBe(createHash('sha256').digest('hex'))
    })
  }
})
