// `pnpm bench [--quick]`: runs every suite in bench/suites in its own process and
// prints each measurement beside its ceiling from the same run, as a ratio.
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { BenchResult } from './lib.js'

const here = dirname(fileURLToPath(import.meta.url))
const passThrough = process.argv.slice(2)
const results: BenchResult[] = []
let failed = false

for (const file of readdirSync(join(here, 'suites')).filter((f) => f.endsWith('.ts')).sort()) {
  const res = spawnSync(process.execPath, ['--import', 'tsx', join(here, 'suites', file), ...passThrough], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 * 1024 * 1024,
  })
  for (const line of res.stdout.split('\n')) {
    if (line.startsWith('BENCH ')) results.push(JSON.parse(line.slice(6)) as BenchResult)
  }
  if (res.status !== 0) {
    console.error(`suite ${file} failed with status ${res.status}`)
    failed = true
  }
}

const byName = new Map(results.map((r) => [r.name, r]))
const rows = results.map((r) => {
  const ceiling = r.ceiling === undefined ? undefined : byName.get(r.ceiling)
  const ratio = ceiling === undefined ? '' : (r.value / ceiling.value).toFixed(2)
  return [r.name, `${r.value.toFixed(r.value < 100 ? 1 : 0)} ${r.unit}`, `${Math.max(...r.peakRssMiB).toFixed(0)} MiB`, r.ceiling ?? '', ratio]
})
const header = ['benchmark', 'value', 'peak RSS', 'ceiling', 'ratio']
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
for (const row of [header, ...rows]) console.log(row.map((c, i) => c.padEnd(widths[i]!)).join('  '))
process.exit(failed ? 1 : 0)
