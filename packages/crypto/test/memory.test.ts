// Memory does not grow with the input: a large stream through encrypt, and through decrypt,
// keeps live memory (heapUsed + arrayBuffers, sampled after a full GC every 16 MiB) flat.
// Default size 256 MiB, generated on the fly, to keep `pnpm test` fast; `pnpm test:memory` runs 1 GiB.
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const MiB = 1024 * 1024
const SIZE_MIB = Number(process.env.DCAS_CRYPTO_MEMORY_MIB ?? 256)
/** Allowed growth over the live memory measured before the stream starts. */
const MAX_GROWTH_MIB = 6
const child = fileURLToPath(new URL('./fixtures/memory.ts', import.meta.url))

interface Report {
  samples: number[]
  out: number
  plaintext: string
  output: string
}

async function stream(mode: 'encrypt' | 'decrypt'): Promise<Report> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', '--import', 'tsx', child, mode, String(SIZE_MIB * MiB)])
  return JSON.parse(stdout) as Report
}

describe(`memory over ${SIZE_MIB} MiB`, () => {
  it('encrypt keeps live memory within a few MiB of where it started', async () => {
    const { samples, out } = await stream('encrypt')
    expect(out).toBeGreaterThan(SIZE_MIB * MiB)
    expect(samples.length).toBeGreaterThan(SIZE_MIB / 16)
    expect(Math.max(...samples) - samples[0]!).toBeLessThan(MAX_GROWTH_MIB)
  }, 120_000)

  it('decrypt (fed by encrypt) keeps live memory within a few MiB and gives back the plaintext', async () => {
    const { samples, out, plaintext, output } = await stream('decrypt')
    expect(out).toBe(SIZE_MIB * MiB)
    expect(output).toBe(plaintext)
    expect(samples.length).toBeGreaterThan(SIZE_MIB / 16)
    expect(Math.max(...samples) - samples[0]!).toBeLessThan(MAX_GROWTH_MIB)
  }, 120_000)
})
