// @dcas/crypto: age v1 encrypt and decrypt beside raw node:crypto ChaCha20-Poly1305 loops over
// 64 KiB records (the age payload's chunk size, one cipher and nonce per record), measured in
// the same run: sealing records is the ceiling of encrypt, opening them the ceiling of decrypt.
//
// The machine is shared and its speed drifts from second to second, so the measurements are
// interleaved in slices of total/16 (/4 with --quick): after each slice of encrypt or decrypt, a slice of each
// raw loop runs, and each figure is its bytes over the sum of its own slices' times. Drift
// then weighs on the ceilings as on the code compared with them. A full GC runs, untimed,
// before each slice, so that no slice pays for the garbage of the one before. The whole
// measurement repeats once per round (lib.ts: a warm-up, then `--runs` recorded runs).
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { decrypt, decryptBytes, encrypt, encryptBytes, generateIdentity, identityToRecipient } from '@dcas/crypto'
import { MiB, peakRssMiB, record, rounds, size } from '../lib.js'

const total = size(1024 * MiB, 32 * MiB)
const RECORD = 64 * 1024
/** Slices per measurement: each costs three full GCs, which would outweigh the quick sizes. */
const SLICES = size(16, 4)
const SEAL = 'ceiling: node:crypto chacha20-poly1305 seal, 64 KiB records'
const OPEN = 'ceiling: node:crypto chacha20-poly1305 open, 64 KiB records'
const label = total >= 1024 * MiB ? `${total / 1024 / MiB} GiB` : `${total / MiB} MiB`

// The plaintext: one 1 MiB block handed out again and again, so the input costs no memory.
const block = randomBytes(MiB)
function* plaintext(bytes: number): Generator<Uint8Array> {
  for (let done = 0; done < bytes; done += MiB) yield block.subarray(0, Math.min(MiB, bytes - done))
}

const rawKey = randomBytes(32)
const RECORDS = MiB / RECORD
function nonceOf(index: number): Buffer {
  const nonce = Buffer.alloc(12)
  nonce.writeUInt32BE(index % RECORDS, 4)
  return nonce
}
/** Seals the 64 KiB record `index` of the block (nonces repeat every 1 MiB, which is fine for a measurement). */
function sealRecord(index: number): { body: Buffer; tag: Buffer } {
  const cipher = createCipheriv('chacha20-poly1305', rawKey, nonceOf(index), { authTagLength: 16 })
  const offset = (index % RECORDS) * RECORD
  const body = cipher.update(block.subarray(offset, offset + RECORD))
  cipher.final()
  return { body, tag: cipher.getAuthTag() }
}
const sealed = Array.from({ length: RECORDS }, (_, i) => sealRecord(i))

function rawSeal(bytes: number): void {
  for (let i = 0; i < bytes / RECORD; i++) sealRecord(i)
}
function rawOpen(bytes: number): void {
  for (let i = 0; i < bytes / RECORD; i++) {
    const { body, tag } = sealed[i % RECORDS]!
    const decipher = createDecipheriv('chacha20-poly1305', rawKey, nonceOf(i), { authTagLength: 16 })
    decipher.update(body)
    decipher.setAuthTag(tag)
    decipher.final()
  }
}

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

type Kind = 'seal' | 'open' | 'encrypt' | 'decrypt' | 'encryptChunks' | 'decryptChunks'

const identity = await generateIdentity()
const recipient = await identityToRecipient(identity)

/** One round over `total` bytes: MB/s of each kind, and the peak RSS after encrypt and after decrypt. */
async function measureRound(total: number): Promise<{ mbs: Record<Kind, number>; encryptRss: number; decryptRss: number; chunkBytes: number }> {
  const SLICE = total / SLICES
  const seconds: Record<Kind, number> = { seal: 0, open: 0, encrypt: 0, decrypt: 0, encryptChunks: 0, decryptChunks: 0 }
  const bytes: Record<Kind, number> = { ...seconds }

  /** Starts timing a slice of `kind` (after a full GC); the returned function adds its time and bytes. */
  function slice(kind: Kind): (processed: number) => void {
    gc()
    const start = performance.now()
    return (processed) => {
      seconds[kind] += (performance.now() - start) / 1000
      bytes[kind] += processed
    }
  }
  function rawSlices(): void {
    let done = slice('seal')
    rawSeal(SLICE)
    done(SLICE)
    done = slice('open')
    rawOpen(SLICE)
    done(SLICE)
  }

  // Encrypt: one stream of `total` bytes, paused after each slice of input while the raw loops run.
  let encrypted = 0
  let sinceSlice = 0
  let done = slice('encrypt')
  for await (const piece of encrypt(plaintext(total), [recipient])) {
    encrypted += piece.length
    sinceSlice += piece.length
    if (sinceSlice >= SLICE) {
      done(SLICE)
      rawSlices()
      sinceSlice -= SLICE
      done = slice('encrypt')
    }
  }
  done(total - bytes.encrypt)
  const encryptRss = peakRssMiB()

  // Decrypt: an age file of one slice, held in memory as the pieces `encrypt` gave, decrypted SLICES
  // times. A 1 GiB file could not be made without encrypting it inside the measurement, nor held
  // without 1 GiB of RSS; the memory test covers decrypting a single 1 GiB stream.
  const file: Uint8Array[] = []
  for await (const piece of encrypt(plaintext(SLICE), [recipient])) file.push(piece)
  // One pass first, unmeasured: the first run over fresh memory pays page faults.
  for await (const _ of decrypt(file, [identity]));
  let decrypted = 0
  for (let pass = 0; pass < total / SLICE; pass++) {
    done = slice('decrypt')
    for await (const piece of decrypt(file, [identity])) decrypted += piece.length
    done(SLICE)
    rawSlices()
  }
  const decryptRss = peakRssMiB()

  // What the dcas server does per chunk: 1 MiB in memory, encrypted with a seed (deterministic),
  // and decrypted back, one file each, so the fixed cost of a file (X25519, HKDF, header) counts.
  const cipherChunk = await encryptBytes(block, [recipient], { seed: randomBytes(32) })
  for (let pass = 0; pass < total / SLICE; pass++) {
    const seed = randomBytes(32)
    done = slice('encryptChunks')
    for (let at = 0; at < SLICE / 4; at += MiB) await encryptBytes(block, [recipient], { seed })
    done(SLICE / 4)
    done = slice('decryptChunks')
    for (let at = 0; at < SLICE / 4; at += MiB) await decryptBytes(cipherChunk, [identity])
    done(SLICE / 4)
    rawSlices()
  }

  if (encrypted <= total || decrypted !== total) throw new Error(`byte counts are off: ${encrypted} out, ${decrypted} back`)
  const mbs = (kind: Kind): number => bytes[kind] / 1e6 / seconds[kind]
  return {
    mbs: { seal: mbs('seal'), open: mbs('open'), encrypt: mbs('encrypt'), decrypt: mbs('decrypt'), encryptChunks: mbs('encryptChunks'), decryptChunks: mbs('decryptChunks') },
    encryptRss,
    decryptRss,
    chunkBytes: bytes.encryptChunks,
  }
}

// Each round is one full measurement; the raw loops run inside every round, so each round's
// figures have their own ceilings. The warm-up rounds (at 64 MiB at most) warm every path: JIT,
// OpenSSL contexts, CPU clocks.
for (const round of rounds()) {
  const { mbs, encryptRss, decryptRss, chunkBytes } = await measureRound(round.warmUp ? Math.min(total, 64 * MiB) : total)
  record(round, { name: SEAL, unit: 'MB/s', value: mbs.seal, peakRssMiB: [peakRssMiB()], isCeiling: true })
  record(round, { name: OPEN, unit: 'MB/s', value: mbs.open, peakRssMiB: [peakRssMiB()], isCeiling: true })
  record(round, { name: `crypto: encrypt ${label}`, unit: 'MB/s', value: mbs.encrypt, peakRssMiB: [encryptRss], ceiling: SEAL })
  record(round, {
    name: `crypto: decrypt ${label} (${SLICES} × ${total / SLICES / MiB} MiB file in memory)`,
    unit: 'MB/s',
    value: mbs.decrypt,
    peakRssMiB: [decryptRss],
    ceiling: OPEN,
  })
  const chunksLabel = `${chunkBytes / MiB} × 1 MiB`
  record(round, { name: `crypto: encryptBytes with seed, ${chunksLabel}`, unit: 'MB/s', value: mbs.encryptChunks, peakRssMiB: [peakRssMiB()], ceiling: SEAL })
  record(round, { name: `crypto: decryptBytes, ${chunksLabel}`, unit: 'MB/s', value: mbs.decryptChunks, peakRssMiB: [peakRssMiB()], ceiling: OPEN })
}
