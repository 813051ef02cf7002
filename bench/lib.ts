// The protocol between benchmark suites and the harness (`bench/run.ts`).
// A suite is a script in `bench/suites/`, run in its own process; it prints one
// `BENCH {json}` line per measurement and per run. A measurement names the ceiling it is
// compared with; the ceiling is measured by the same suite, in the same runs, interleaved
// with it, so that the load of a shared machine falls on both alike.
//
// Repetition lives in the suites: each does `WARM_UPS` unrecorded rounds, then `runs` recorded
// ones (`--runs N`, default 5, 3 with `--quick`), and in every round runs each subject and its ceiling one after
// the other, in an order that turns with the round (see `inTurn`). The harness takes the
// median over the runs, and the ratio of each run to its ceiling in that same run.
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'

/** One measurement printed by a suite. */
export interface BenchResult {
  /** What was measured, e.g. `crypto: encrypt 1 GiB`. */
  name: string
  /**
   * `MB/s` (10^6 bytes per second), `ops/s`, `MiB` (a memory figure, no ceiling), `CPU s/GB`
   * (CPU seconds, user + system, per 10^9 bytes: lower is better, so its ratio to a ceiling is
   * how many times the ceiling's CPU it costs), or `ratio` (a dimensionless figure, as placement's balance).
   */
  unit: 'MB/s' | 'ops/s' | 'MiB' | 'CPU s/GB' | 'ratio'
  value: number
  /** Peak resident set size of the measuring process(es), in MiB: one entry per process. */
  peakRssMiB: number[]
  /** What each entry of `peakRssMiB` is, e.g. `['owner', 'peer 1', 'peer 2']` (optional). */
  processes?: string[]
  /** Name of the ceiling measurement this one is compared with, when it is not itself a ceiling. */
  ceiling?: string
  /** `true` for a raw ceiling (node:crypto, fs, net) rather than dcas code. */
  isCeiling?: boolean
  /** Which recorded run (0-based) of the suite this value comes from; absent means a single run. */
  run?: number
}

/** Value of `--name VALUE` on the command line. */
export function argValue(name: string): string | undefined {
  const at = process.argv.indexOf(name)
  return at >= 0 ? process.argv[at + 1] : undefined
}

/** `--quick` on the command line: small sizes, for a whole `pnpm bench --quick` under a minute. */
export const quick = process.argv.includes('--quick')

/**
 * Recorded runs per measurement (`--runs N`): 5 by default, 3 with `--quick` (a quick run is a
 * check that every suite works and roughly where it stands, in about a minute; the figures
 * quoted come from full runs).
 */
export const runs = positiveInteger(argValue('--runs') ?? (quick ? '3' : '5'), '--runs')
/** Unrecorded rounds before the recorded ones (JIT, page cache, TCP windows, CPU clocks). */
export const WARM_UPS = 1

function positiveInteger(text: string, what: string): number {
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${what} must be a positive integer, got ${text}`)
  return n
}

/** Picks the full or the quick size. */
export function size(full: number, quickSize: number): number {
  return quick ? quickSize : full
}

export const KiB = 1024
export const MiB = 1024 * KiB
export const GiB = 1024 * MiB

/** `64 MiB`, `1 GiB`. */
export function bytesLabel(bytes: number): string {
  return bytes >= GiB && bytes % GiB === 0 ? `${bytes / GiB} GiB` : bytes >= MiB ? `${+(bytes / MiB).toFixed(1)} MiB` : `${bytes / 1024} KiB`
}

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

/** Seconds `fn` takes. */
export async function seconds(fn: () => unknown): Promise<number> {
  const start = performance.now()
  await fn()
  return (performance.now() - start) / 1000
}

/** One round of a suite: a warm-up (not recorded) or recorded run number `run`. */
export interface Round {
  /** 0-based over all rounds, warm-ups included: it decides the order of `inTurn`. */
  index: number
  warmUp: boolean
  /** The recorded run number (0-based); -1 during warm-ups. */
  run: number
}

/** The rounds of a suite: `WARM_UPS` warm-ups, then `runs` recorded runs. */
export function* rounds(): Generator<Round> {
  for (let index = 0; index < WARM_UPS + runs; index++) {
    yield { index, warmUp: index < WARM_UPS, run: index - WARM_UPS }
  }
}

/**
 * Runs `fns` one after another, starting at a different one each round (so that none is always
 * first, or always right after the same neighbour), and returns their results in the given order.
 */
export async function inTurn<T>(round: Round, fns: ReadonlyArray<() => Promise<T>>): Promise<T[]> {
  const results = new Array<T>(fns.length)
  for (let k = 0; k < fns.length; k++) {
    const i = (round.index + k) % fns.length
    results[i] = await fns[i]!()
  }
  return results
}

/** Emits `result` for a recorded round; drops it during a warm-up. */
export function record(round: Round, result: Omit<BenchResult, 'run'>): void {
  if (!round.warmUp) emit({ ...result, run: round.run })
}

/** Samples this process's RSS every 20 ms between `start()` and `stop()`; `stop()` returns the peak in MiB. */
export function rssSampler(): { start(): void; stop(): number } {
  let peak = 0
  let timer: NodeJS.Timeout | undefined
  const sample = (): void => {
    peak = Math.max(peak, process.memoryUsage.rss())
  }
  return {
    start() {
      clearInterval(timer)
      peak = 0
      sample()
      timer = setInterval(sample, 20)
      timer.unref()
    },
    stop() {
      clearInterval(timer)
      sample()
      return peak / MiB
    },
  }
}

/** Clock ticks per second of `/proc/<pid>/stat` (USER_HZ: 100 on every Linux architecture Node runs on). */
const CLOCK_TICKS = 100

/**
 * CPU seconds (user + system, all threads) a running process has used so far, from
 * `/proc/<pid>/stat`: readable for any child, whatever it runs (a dcas node, a worker, restic).
 * Linux only; elsewhere it throws.
 */
export function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name (which may hold spaces, in parentheses): state is the first; utime, stime the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
}

/**
 * CPU seconds of the children a process has waited for (`cutime` + `cstime` of `/proc/<pid>/stat`):
 * what a shell's finished commands cost.
 */
export function childCpuSecondsOf(pid: number | 'self'): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS
}

/** Runs `fn` and returns its result with the CPU seconds the processes `pids` used meanwhile, summed. */
export async function withCpu<T>(pids: readonly number[], fn: () => Promise<T>): Promise<{ result: T; cpuSeconds: number }> {
  const before = pids.map(cpuSecondsOf)
  const result = await fn()
  const cpuSeconds = pids.reduce((sum, pid, i) => sum + cpuSecondsOf(pid) - before[i]!, 0)
  return { result, cpuSeconds }
}

/** Anything that reports its memory, in bytes (a dcas node handle, a {@link Worker}). */
export interface HasUsage {
  usage(): Promise<{ rss: number; maxRss: number }>
}

/**
 * Polls the RSS of other processes every `intervalMs` while `fn` runs, and returns `fn`'s result
 * with each process's peak in MiB. A poll is only a sample: spikes shorter than the interval can
 * pass unseen, so lifetime peaks (`maxRss`) are reported as well where they matter.
 */
export async function withPeakRss<T>(processes: readonly HasUsage[], fn: () => Promise<T>, intervalMs = 50): Promise<{ result: T; peakRssMiB: number[] }> {
  const peaks = processes.map(() => 0)
  const sample = async (): Promise<void> => {
    const usages = await Promise.all(processes.map((p) => p.usage()))
    usages.forEach((u, i) => (peaks[i] = Math.max(peaks[i]!, u.rss)))
  }
  let polling = true
  let wake: (() => void) | undefined
  const poller = (async () => {
    while (polling) {
      await sample()
      await new Promise<void>((resolve) => {
        wake = resolve
        setTimeout(resolve, intervalMs)
      })
    }
  })()
  try {
    const result = await fn()
    polling = false
    wake?.()
    await poller
    await sample()
    return { result, peakRssMiB: peaks.map((p) => p / MiB) }
  } finally {
    polling = false
    wake?.()
    await poller.catch(() => {})
  }
}

// ---- worker processes -----------------------------------------------------------------------
// A suite that needs several processes (a sender and a receiver, a node and its peers) forks
// workers that stay up for the whole suite and answer requests over IPC, so that every round
// reuses the same processes and each one's peak RSS is its own.

/** `--worker` on the command line: this process is a worker, not the suite's main process. */
export const isWorker = process.argv.includes('--worker')

/** A request to a worker: its `op` and whatever else it needs. */
export interface WorkerRequest {
  op: string
  [field: string]: unknown
}

interface WorkerReply {
  id: number
  ok: boolean
  result?: unknown
  error?: string
}

/** A worker process started with {@link startWorker}. */
export interface Worker extends HasUsage {
  readonly pid: number
  call<T>(request: WorkerRequest): Promise<T>
  /** Disconnects and waits for the process to exit. */
  close(): Promise<void>
}

/**
 * Forks `file` (a TypeScript module) with `--worker` and `args`, with `nodeFlags` before this
 * process's node flags (`--import tsx`, and `--cpu-prof` when profiling). The module calls
 * {@link serveWorker}.
 */
export async function startWorker(file: string, args: string[] = [], nodeFlags: readonly string[] = []): Promise<Worker> {
  const child: ChildProcess = fork(file, ['--worker', ...args, ...(quick ? ['--quick'] : [])], {
    execArgv: [...nodeFlags, ...process.execArgv],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced',
  })
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>()
  let nextId = 0
  const exited = once(child, 'exit')
  void exited.then(([code, signal]) => {
    for (const p of pending.values()) p.reject(new Error(`worker ${file} exited (${String(signal ?? code)})`))
    pending.clear()
  })
  child.on('message', (reply: WorkerReply) => {
    const p = pending.get(reply.id)
    pending.delete(reply.id)
    if (reply.ok) p?.resolve(reply.result)
    else p?.reject(new Error(`worker ${file}: ${reply.error}`))
  })
  const call = <T>(request: WorkerRequest): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (!child.connected) return reject(new Error(`worker ${file} is gone`))
      const id = nextId++
      pending.set(id, { resolve: resolve as (value: unknown) => void, reject })
      child.send({ id, request })
    })
  await call({ op: 'ping' })
  return {
    pid: child.pid!,
    call,
    usage: () => call({ op: 'usage' }),
    async close() {
      if (child.connected) child.disconnect()
      await exited
    },
  }
}

/**
 * Serves requests from the suite's main process; `ping` and `usage` are answered here. The
 * process exits when the main process disconnects.
 */
export function serveWorker(handle: (request: WorkerRequest) => Promise<unknown>): void {
  process.on('message', (message: { id: number; request: WorkerRequest }) => {
    const { id, request } = message
    const answer =
      request.op === 'ping'
        ? Promise.resolve(undefined)
        : request.op === 'usage'
          ? Promise.resolve({ rss: process.memoryUsage.rss(), maxRss: process.resourceUsage().maxRSS * 1024 })
          : handle(request)
    answer.then(
      (result) => process.send?.({ id, ok: true, result } satisfies WorkerReply),
      (err: unknown) => process.send?.({ id, ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) } satisfies WorkerReply),
    )
  })
  process.on('disconnect', () => process.exit(0))
}
