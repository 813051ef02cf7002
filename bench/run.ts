// `pnpm bench [--quick] [--runs N] [--json FILE] [--markdown FILE] [--profile DIR] [suite…]` (`--help` says what each does)
//
// Runs every suite in bench/suites (or the ones named) one after the other, each in its own
// process, and prints one table: each benchmark's median over its recorded runs, its min–max,
// the peak RSS of each process that took part, the ceiling it is compared with, and the ratio
// to that ceiling — taken run by run (each run against the ceiling measured beside it in the
// same round), then the median of those ratios. The suites repeat and interleave on their own
// (see lib.ts); `--json FILE` writes every run as printed, with the machine it ran on.
import { spawn } from 'node:child_process'
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, release, totalmem } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { argValue, type BenchResult } from './lib.js'

const here = dirname(fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
const available = readdirSync(join(here, 'suites'))
  .filter((f) => f.endsWith('.ts'))
  .map((f) => basename(f, '.ts'))
  .sort()
const usage = `usage: pnpm bench [--quick] [--runs N] [--json FILE] [--markdown FILE] [--profile DIR] [suite…]

  --quick          smaller sizes and 3 runs: a check that every benchmark runs, not figures to quote
  --runs N         recorded runs of each benchmark (default 5, after one warm-up)
  --json FILE      writes every run as printed, with the machine it ran on
  --markdown FILE  writes the table as Markdown
  --profile DIR    CPU profiles (.cpuprofile) of every suite process into DIR

suites (all when none is named): ${available.join(', ')}`
if (args.includes('--help') || args.includes('-h')) {
  console.log(usage)
  process.exit(0)
}
/** Says what is wrong with the command line, and how to use it. */
function refuse(message: string): never {
  console.error(`bench: ${message}\n\n${usage}`)
  process.exit(2)
}
const valued = new Set(['--runs', '--json', '--markdown', '--profile'])
const forwarded: string[] = []
const only: string[] = []
for (let i = 0; i < args.length; i++) {
  const arg = args[i]!
  if (valued.has(arg)) {
    if (args[i + 1] === undefined) refuse(`${arg} needs a value`)
    if (arg === '--runs') forwarded.push(arg, args[i + 1]!)
    i++
  } else if (arg === '--quick') forwarded.push(arg)
  else if (arg.startsWith('-')) refuse(`unknown option ${arg}`)
  else only.push(arg.replace(/\.ts$/, ''))
}
const jsonFile = argValue('--json')
const markdownFile = argValue('--markdown')
const profileDir = argValue('--profile')

for (const name of only) if (!available.includes(name)) refuse(`no suite "${name}"`)
const suites = only.length === 0 ? available : available.filter((s) => only.includes(s))

interface SuiteRun {
  suite: string
  status: number | null
  seconds: number
  results: BenchResult[]
}

/** Runs one suite; its BENCH lines are collected, anything else it prints goes to stderr. */
async function runSuite(suite: string): Promise<SuiteRun> {
  const nodeFlags = ['--import', 'tsx']
  if (profileDir !== undefined) {
    mkdirSync(profileDir, { recursive: true })
    nodeFlags.push('--cpu-prof', '--cpu-prof-dir', resolve(profileDir))
  }
  const started = performance.now()
  const child = spawn(process.execPath, [...nodeFlags, join(here, 'suites', `${suite}.ts`), ...forwarded], { stdio: ['ignore', 'pipe', 'inherit'] })
  const results: BenchResult[] = []
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  for await (const line of createInterface({ input: child.stdout })) {
    if (line.startsWith('BENCH ')) results.push(JSON.parse(line.slice(6)) as BenchResult)
    else if (line.trim() !== '') console.error(`  ${suite}: ${line}`)
  }
  const status = await exited
  return { suite, status, seconds: (performance.now() - started) / 1000, results }
}

const machine = {
  cpu: `${cpus()[0]?.model ?? 'unknown'} × ${cpus().length}`,
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  node: process.version,
  kernel: release(),
  loadAverageAtStart: loadavg().map((l) => +l.toFixed(2)),
}
const started = performance.now()
console.error(`bench: ${suites.join(', ')} (${args.join(' ') || 'full sizes'}) on ${machine.cpu}, load ${machine.loadAverageAtStart.join(' ')}`)
const done: SuiteRun[] = []
for (const suite of suites) {
  const run = await runSuite(suite)
  done.push(run)
  console.error(`bench: ${suite} ${run.status === 0 ? 'done' : `FAILED (status ${run.status})`} in ${run.seconds.toFixed(1)} s`)
}
const totalSeconds = (performance.now() - started) / 1000

// ---- summary ------------------------------------------------------------------------------

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

interface Row {
  suite: string
  name: string
  unit: BenchResult['unit']
  runs: number
  median: number
  min: number
  max: number
  peakRssMiB: number[]
  processes?: string[]
  ceiling?: string
  isCeiling: boolean
  ratio?: { median: number; min: number; max: number }
}

const rows: Row[] = []
for (const { suite, results } of done) {
  const byName = new Map<string, BenchResult[]>()
  for (const r of results) byName.set(r.name, [...(byName.get(r.name) ?? []), r])
  for (const [name, list] of byName) {
    const values = list.map((r) => r.value)
    const first = list[0]!
    const width = Math.max(...list.map((r) => r.peakRssMiB.length))
    const peakRssMiB = Array.from({ length: width }, (_, i) => Math.max(...list.map((r) => r.peakRssMiB[i] ?? 0)))
    const row: Row = { suite, name, unit: first.unit, runs: list.length, median: median(values), min: Math.min(...values), max: Math.max(...values), peakRssMiB, isCeiling: first.isCeiling === true }
    if (first.processes !== undefined) row.processes = first.processes
    if (first.ceiling !== undefined) {
      row.ceiling = first.ceiling
      const ceilingRuns = byName.get(first.ceiling) ?? done.flatMap((d) => d.results.filter((r) => r.name === first.ceiling))
      // Each run against the ceiling of the same run; a suite without run numbers has one of each.
      const ratios = list.flatMap((r) => {
        const c = ceilingRuns.find((x) => x.run === r.run)
        return c === undefined ? [] : [r.value / c.value]
      })
      if (ratios.length > 0) row.ratio = { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios) }
    }
    rows.push(row)
  }
}

const number = (v: number): string => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2))
const idOf = new Map(rows.map((r, i) => [`${r.suite}\0${r.name}`, i + 1]))
const ceilingId = (r: Row): number | undefined => {
  if (r.ceiling === undefined) return undefined
  return idOf.get(`${r.suite}\0${r.ceiling}`) ?? rows.findIndex((x) => x.name === r.ceiling) + 1
}
const cells = rows.map((r, i) => {
  const c = ceilingId(r)
  return [
    String(i + 1),
    r.name,
    `${number(r.median)} ${r.unit}`,
    r.runs > 1 ? `${number(r.min)}–${number(r.max)}` : '',
    r.peakRssMiB.map((p) => p.toFixed(0)).join(' / '),
    c === undefined || c === 0 ? '' : `#${c}`,
    r.ratio === undefined ? '' : r.runs > 1 ? `${r.ratio.median.toFixed(2)} (${r.ratio.min.toFixed(2)}–${r.ratio.max.toFixed(2)})` : r.ratio.median.toFixed(2),
  ]
})
const header = ['#', 'benchmark', 'median', 'min–max', 'peak RSS MiB', 'vs', 'ratio (min–max)']
const right = new Set([0, 2, 3, 4])
const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)))
const line = (c: string[]): string => c.map((x, i) => (right.has(i) ? x.padStart(widths[i]!) : x.padEnd(widths[i]!))).join('  ').trimEnd()
console.log()
console.log(line(header))
let suiteOf = ''
rows.forEach((r, i) => {
  if (r.suite !== suiteOf) {
    suiteOf = r.suite
    const run = done.find((d) => d.suite === r.suite)!
    console.log(`-- ${r.suite} (${run.seconds.toFixed(0)} s)`)
  }
  console.log(line(cells[i]!))
})
const failed = done.filter((d) => d.status !== 0)
console.log(
  `\n${rows.length} benchmarks from ${done.length} suites in ${totalSeconds.toFixed(0)} s; median of ${Math.max(0, ...rows.map((r) => r.runs))} runs after a warm-up; ` +
    `ratio = run ÷ its ceiling in the same run (for CPU s/GB rows: how many times the ceiling's CPU); peak RSS per process (max over runs).` +
    (failed.length > 0 ? `\nFAILED: ${failed.map((f) => f.suite).join(', ')}` : ''),
)

if (markdownFile !== undefined) {
  const md = [
    `| ${header.join(' | ')} |`,
    `| ${header.map((_, i) => (right.has(i) ? '---:' : '---')).join(' | ')} |`,
    ...cells.map((c) => `| ${c.map((x) => x.replaceAll('|', '\\|')).join(' | ')} |`),
  ]
  mkdirSync(dirname(resolve(markdownFile)), { recursive: true })
  writeFileSync(markdownFile, md.join('\n') + '\n')
}
if (jsonFile !== undefined) {
  const raw = { date: new Date().toISOString(), args, machine: { ...machine, loadAverageAtEnd: loadavg().map((l) => +l.toFixed(2)) }, totalSeconds, suites: done, summary: rows }
  mkdirSync(dirname(resolve(jsonFile)), { recursive: true })
  writeFileSync(jsonFile, JSON.stringify(raw, null, 2) + '\n')
}
process.exit(failed.length > 0 ? 1 : 0)
