// `pnpm bench`: raw ceilings of this machine, measured in this run.
// Each package's benchmarks are added beside these and quoted as a ratio to them.
import { createHash } from 'node:crypto'
import { mkdtemp, open, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const quick = process.argv.includes('--quick')
const TOTAL = (quick ? 64 : 512) * 1024 * 1024
const BLOCK = 1024 * 1024
const block = Buffer.alloc(BLOCK, 0x5a)

function report(name: string, bytes: number, ms: number): void {
  const mbps = bytes / 1e6 / (ms / 1000)
  console.log(`${name.padEnd(28)} ${mbps.toFixed(0).padStart(7)} MB/s   peak RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`)
}

function sha256Ceiling(): void {
  const start = performance.now()
  const hash = createHash('sha256')
  for (let done = 0; done < TOTAL; done += BLOCK) hash.update(block)
  hash.digest()
  report('ceiling: sha256', TOTAL, performance.now() - start)
}

async function fsWriteCeiling(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'dcas-bench-'))
  try {
    const start = performance.now()
    const file = await open(join(dir, 'out'), 'w')
    for (let done = 0; done < TOTAL; done += BLOCK) await file.write(block)
    await file.sync()
    await file.close()
    report('ceiling: fs write + fsync', TOTAL, performance.now() - start)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

sha256Ceiling()
await fsWriteCeiling()
