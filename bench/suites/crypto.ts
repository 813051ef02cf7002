// @dcas/crypto: age v1 encrypt and decrypt beside a raw node:crypto ChaCha20-Poly1305
// loop over 64 KiB records (the age payload's chunk size), measured in the same run.
//
// The machine is shared, and its speed drifts from second to second. So the three
// measurements are interleaved in slices of total/16: after each slice of encrypt or
// decrypt, a slice of the raw loop runs, and each figure is its bytes over the sum of its
// own slices' times. Drift then weighs on the ceiling as on the code compared with it.
// Each figure is also given per second of CPU time (process.cpuUsage, user + system): when
// other processes take the cores, that one still shows what each byte costs.
import { createCipheriv, randomBytes } from 'node:crypto'
import { decrypt, encrypt, generateIdentity, identityToRecipient } from '@dcas/crypto'
import { emit, MiB, peakRssMiB, size } from '../lib.js'

const total = size(1024 * MiB, 64 * MiB)
const SLICE = total / 16
const RECORD = 64 * 1024
const CEILING = 'ceiling: node:crypto chacha20-poly1305, 64 KiB records'
const label = total >= 1024 * MiB ? `${total / 1024 / MiB} GiB` : `${total / MiB} MiB`

// The plaintext: one 1 MiB block handed out again and again, so the input costs no memory.
const block = randomBytes(MiB)
function* plaintext(bytes: number): Generator<Uint8Array> {
  for (let done = 0; done < bytes; done += MiB) yield block.subarray(0, Math.min(MiB, bytes - done))
}

const rawKey = randomBytes(32)
/** The ceiling: node:crypto alone, one cipher per 64 KiB record (a fresh nonce each) as the age payload needs. */
function rawSeal(bytes: number): void {
  const nonce = Buffer.alloc(12)
  for (let done = 0, i = 0; done < bytes; done += RECORD, i++) {
    nonce.writeUInt32BE(i, 4)
    const cipher = createCipheriv('chacha20-poly1305', rawKey, nonce, { authTagLength: 16 })
    const offset = done % MiB
    cipher.update(block.subarray(offset, offset + Math.min(RECORD, bytes - done)))
    cipher.final()
    cipher.getAuthTag()
  }
}

type Kind = 'raw' | 'encrypt' | 'decrypt'
const wall: Record<Kind, number> = { raw: 0, encrypt: 0, decrypt: 0 }
const cpu: Record<Kind, number> = { raw: 0, encrypt: 0, decrypt: 0 }

/** Starts timing a slice; the returned function adds its wall and CPU seconds to `kind`. */
function slice(kind: Kind): () => void {
  const startWall = performance.now()
  const startCpu = process.cpuUsage()
  return () => {
    wall[kind] += (performance.now() - startWall) / 1000
    const used = process.cpuUsage(startCpu)
    cpu[kind] += (used.user + used.system) / 1e6
  }
}

let rawBytes = 0
function rawSlice(): void {
  const done = slice('raw')
  rawSeal(SLICE)
  done()
  rawBytes += SLICE
}

const identity = await generateIdentity()
const recipient = await identityToRecipient(identity)

// Warm up every path (JIT, OpenSSL contexts, CPU clocks) before measuring.
rawSeal(64 * MiB)
for await (const _ of decrypt(encrypt(plaintext(64 * MiB), [recipient]), [identity]));

// Encrypt: one stream of `total` bytes, paused after each slice of output while the raw loop runs.
let encrypted = 0
let sinceSlice = 0
let done = slice('encrypt')
for await (const piece of encrypt(plaintext(total), [recipient])) {
  encrypted += piece.length
  sinceSlice += piece.length
  if (sinceSlice >= SLICE) {
    done()
    rawSlice()
    sinceSlice = 0
    done = slice('encrypt')
  }
}
done()
const encryptRss = peakRssMiB()

// Decrypt: an age file of one slice held in memory as the pieces `encrypt` gave, decrypted 16
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
  done()
  rawSlice()
}
const decryptRss = peakRssMiB()

if (encrypted <= total || decrypted !== total) throw new Error(`byte counts are off: ${encrypted} out, ${decrypted} back`)

const decryptName = `crypto: decrypt ${label} (${total / SLICE} × ${SLICE / MiB} MiB file in memory)`
for (const [seconds, suffix] of [
  [wall, ''],
  [cpu, ', per CPU second'],
] as const) {
  const ceiling = `${CEILING}${suffix}`
  const mbs = (bytes: number, kind: Kind): number => bytes / 1e6 / seconds[kind]
  emit({ name: ceiling, unit: 'MB/s', value: mbs(rawBytes, 'raw'), peakRssMiB: [peakRssMiB()], isCeiling: true })
  emit({ name: `crypto: encrypt ${label}${suffix}`, unit: 'MB/s', value: mbs(total, 'encrypt'), peakRssMiB: [encryptRss], ceiling })
  emit({ name: `${decryptName}${suffix}`, unit: 'MB/s', value: mbs(total, 'decrypt'), peakRssMiB: [decryptRss], ceiling })
}
