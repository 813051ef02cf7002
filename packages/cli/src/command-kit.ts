// What every command of `dcas` shares: which node it talks to, how it prints, and how
// Ctrl-C ends a transfer. The commands' modules take it; none of them builds its own.
import { resolve } from 'node:path'
import { Option } from 'commander'
import { defaultRoot } from './config.js'
import type { DcasClient } from './client.js'
import { AbortedError } from './errors.js'
import type { Progress } from './progress.js'

// The client and the progress bar load only when a command uses them, so `dcas --help` starts fast.
const lazy = {
  client: () => import('./client.js'),
  progress: () => import('./progress.js'),
}

/** The streams and environment a run of the command line uses. */
export interface CliIO {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean }
  stdout: NodeJS.WritableStream & { isTTY?: boolean }
  stderr: NodeJS.WritableStream & { isTTY?: boolean }
  /** Read for `DCAS_ROOT`. */
  env: Record<string, string | undefined>
  /** `dcas serve` runs until this resolves (default: the first SIGINT or SIGTERM). */
  stopSignal?: () => Promise<string>
}

/** The option every command takes: the data directory of its node. */
export interface RootOptions {
  root?: string
}

/** What a run learnt that its error messages need. */
export interface RunState {
  /** The default data directory, when the command used it (no --root, no DCAS_ROOT). */
  defaultRootUsed?: string
}

/** Collects a repeated option's values. */
export const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value]

/** `--root DIR`, with `fallback` (the default data directory) in its help. */
export const rootOption = (fallback: string): Option => new Option('-r, --root <dir>', `the node's data directory (default: $DCAS_ROOT, else ${fallback})`)

/** `--json`. */
export const jsonOption = (): Option => new Option('--json', 'print JSON instead of text')

/** What the commands use to talk to their node and to the person at the terminal. */
export interface CommandKit {
  /** The default data directory. */
  home: string
  /** Prints a line on standard output. */
  out: (line: string) => void
  /** Prints a line on standard error. */
  warn: (line: string) => void
  /** Prints a value as indented JSON. */
  json: (value: unknown) => void
  /** The data directory a command's options name (noting in the run's state when it is the default). */
  rootOf: (opts: RootOptions) => string
  /** A client of the node in the command's data directory. */
  client: (opts: RootOptions) => Promise<DcasClient>
  /** A progress bar on standard error when `show`, else one that prints nothing. */
  progressOn: (show: boolean, label: string, total: number | undefined) => Promise<Progress>
  /** Runs `fn` with a signal that Ctrl-C aborts (it then fails with `ERR_ABORTED`). */
  interruptible: <T>(fn: (signal: AbortSignal) => Promise<T>) => Promise<T>
}

/** The kit of one run of the command line. */
export function commandKit(io: CliIO, state: RunState): CommandKit {
  const out = (line: string): void => void io.stdout.write(`${line}\n`)
  const warn = (line: string): void => void io.stderr.write(`${line}\n`)
  const home = defaultRoot(io.env)
  const rootOf = (opts: RootOptions): string => {
    const root = opts.root ?? io.env.DCAS_ROOT
    if (root !== undefined && root !== '') return resolve(root)
    state.defaultRootUsed = home
    return home
  }
  const client = async (opts: RootOptions): Promise<DcasClient> =>
    (await lazy.client()).connect({ root: rootOf(opts), onStarting: (pid) => warn(`waiting for the node to start (dcas serve, pid ${pid})…`) })
  const progressOn = async (show: boolean, label: string, total: number | undefined): Promise<Progress> => {
    const { createProgress, noProgress } = await lazy.progress()
    return show ? createProgress(io.stderr, label, total) : noProgress
  }
  const json = (value: unknown): void => out(JSON.stringify(value, null, 2))
  // Ctrl-C during a transfer aborts it cleanly (a partial download is removed).
  const interruptible = async <T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> => {
    const controller = new AbortController()
    const onSignal = (): void => controller.abort(new AbortedError('interrupted'))
    process.once('SIGINT', onSignal)
    try {
      return await fn(controller.signal)
    } catch (err) {
      if (controller.signal.aborted) throw new AbortedError('interrupted', { cause: err })
      throw err
    } finally {
      process.off('SIGINT', onSignal)
    }
  }
  return { home, out, warn, json, rootOf, client, progressOn, interruptible }
}
