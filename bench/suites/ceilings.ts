// Raw ceilings of this machine: SHA-256 and fs write + fsync.
import { createHash } from 'node:crypto'
import { mkdtemp, open, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { emit, MiB, peakRssMiB, size, throughput } from '../lib.js'

const total = size(1024 * MiB, 64 * MiB)
const block = Buffer.alloc(MiB, 0x5a)

const sha = await throughput(total, () => {
  const hash = createHash('sha256')
  for (let done = 0; done < total; done += MiB) hash.update(block)
  hash.digest()
})
emit({ name: 'ceiling: sha256', unit: 'MB/s', value: sha, peakRssMiB: [peakRssMiB()], isCeiling: true })

const dir = await mkdtemp(join(tmpdir(), 'dcas-bench-'))
try {
  const write = await throughput(total, async () => {
    const file = await open(join(dir, 'out'), 'w')
    for (let done = 0; done < total; done += MiB) await file.write(block)
    await file.sync()
    await file.close()
  })
  emit({ name: 'ceiling: fs write + fsync', unit: 'MB/s', value: write, peakRssMiB: [peakRssMiB()], isCeiling: true })
} finally {
  await rm(dir, { recursive: true, force: true })
}
