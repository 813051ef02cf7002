// The protocol between benchmark suites and the harness (`bench/run.ts`).
// A suite is a script in `bench/suites/`, run in its own process; it prints one
// `BENCH {json}` line per measurement. A measurement names the ceiling it is
// compared with; the ceiling is measured by the same suite in the same run.

/** One measurement printed by a suite. */
export interface BenchResult {
  /** What was measured, e.g. `crypto: encrypt 1 GiB`. */
  name: string
  /** `MB/s` (10^6 bytes per second) or `ops/s`. */
  unit: 'MB/s' | 'ops/s'
  value: number
  /** Peak resident set size of the measuring process(es), in MiB: one entry per process. */
  peakRssMiB: number[]
  /** Name of the ceiling measurement this one is compared with, when it is not itself a ceiling. */
  ceiling?: string
  /** `true` for a raw ceiling (node:crypto, fs, net) rather than dcas code. */
  isCeiling?: boolean
}

/** `--quick` on the command line: small sizes, for a run under a minute. */
export const quick = process.argv.includes('--quick')

/** Picks the full or the quick size. */
export function size(full: number, quickSize: number): number {
  return quick ? quickSize : full
}

export const MiB = 1024 * 1024
export const GiB = 1024 * MiB

/** Peak RSS of this process so far, in MiB. */
export function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024
}

/** Prints one measurement for the harness. */
export function emit(result: BenchResult): void {
  console.log(`BENCH ${JSON.stringify(result)}`)
}

/** Times `fn` and returns MB/s for `bytes` bytes processed. */
export async function throughput(bytes: number, fn: () => Promise<void> | void): Promise<number> {
  const start = performance.now()
  await fn()
  return bytes / 1e6 / ((performance.now() - start) / 1000)
}
