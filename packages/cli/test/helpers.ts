import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { Readable, Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import type { ApiFile } from '../src/index.js'

/** The built executable, run by this Node.js. */
export const BIN = fileURLToPath(new URL('../dist/bin.js', import.meta.url))
/** The `dcas` command as a package manager installs it: run as a program, it starts Node.js with the flags of a dcas process. */
export const COMMAND = fileURLToPath(new URL('../bin/dcas.js', import.meta.url))

/** A temporary folder removed by `cleanup()`. */
export async function tempDir(): Promise<{ path: string; cleanup: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), 'dcas-cli-test-'))
  return { path, cleanup: () => rm(path, { recursive: true, force: true }) }
}

/** What a run of `dcas` printed and how it ended. */
export interface RunResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs the built `dcas` with `args` to completion; `input` is piped to its stdin. */
export function dcas(args: string[], options: { input?: string | Buffer | Readable; env?: Record<string, string>; cwd?: string } = {}): Promise<RunResult & { stdoutBytes: Buffer }> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...options.env }, ...(options.cwd === undefined ? {} : { cwd: options.cwd }) })
  const out: Buffer[] = []
  const err: Buffer[] = []
  child.stdout.on('data', (b: Buffer) => out.push(b))
  child.stderr.on('data', (b: Buffer) => err.push(b))
  child.stdin.on('error', () => {}) // it may exit before reading everything
  if (options.input instanceof Readable) options.input.pipe(child.stdin)
  else child.stdin.end(options.input)
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code) => {
      const stdoutBytes = Buffer.concat(out)
      resolve({ code, stdout: stdoutBytes.toString(), stdoutBytes, stderr: Buffer.concat(err).toString() })
    })
  })
}

/** One line of the daemon's JSON log. */
export type LogLine = Record<string, unknown> & { msg?: string; level?: number }

/** A `dcas serve` child process. */
export interface ServeHandle {
  readonly child: ChildProcess
  readonly root: string
  /** Every JSON log line so far. */
  readonly lines: LogLine[]
  /** Resolves with the first log line (already seen or to come) that matches. */
  waitFor(match: (line: LogLine) => boolean): Promise<LogLine>
  /** After the `ready` line: the node's api.json. */
  api: ApiFile
  /** Sends `signal` and resolves with how the process ended. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Everything the process wrote to stderr. */
  stderr(): string
}

const running = new Set<ServeHandle>()

/** Starts `dcas serve --root root …args` (the command, as installed) and resolves once it logged `ready` (or rejects when it exits first). */
export async function serve(root: string, args: string[] = []): Promise<ServeHandle> {
  // The command starts the `node` on PATH: this one, as a package manager's scripts would have it.
  const child = spawn(COMMAND, ['serve', '--root', root, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}` } })
  const lines: LogLine[] = []
  const events = new EventEmitter()
  let stderr = ''
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()))
  createInterface({ input: child.stdout }).on('line', (text) => {
    try {
      const line = JSON.parse(text) as LogLine
      lines.push(line)
      events.emit('line', line)
    } catch {
      // not a log line
    }
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  const waitFor = (match: (line: LogLine) => boolean): Promise<LogLine> => {
    const seen = lines.find(match)
    if (seen !== undefined) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      const onLine = (line: LogLine): void => {
        if (!match(line)) return
        events.off('line', onLine)
        resolve(line)
      }
      events.on('line', onLine)
      void exited.then(({ code, signal }) => {
        events.off('line', onLine)
        reject(new Error(`dcas serve exited (${signal ?? code}) before the awaited log line; stderr: ${stderr}`))
      })
    })
  }
  const handle: ServeHandle = {
    child,
    root,
    lines,
    waitFor,
    api: undefined as unknown as ApiFile,
    exited,
    stderr: () => stderr,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      const result = await exited
      running.delete(handle)
      return result
    },
  }
  running.add(handle)
  await waitFor((l) => l.msg === 'ready')
  handle.api = JSON.parse(await readFile(join(root, 'api.json'), 'utf8')) as ApiFile
  return handle
}

/** Kills every `dcas serve` still running (for afterEach). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((h) => h.stop('SIGKILL')))
}

/** Every regular file under `dir`, recursively (none when it does not exist). */
export async function filesUnder(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true, recursive: true })
    return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name))
  } catch {
    return []
  }
}

export const sha256 = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex')

/** A writable that keeps what is written, as text. */
export function capture(options: { isTTY?: boolean } = {}): Writable & { text(): string; isTTY?: boolean; columns?: number } {
  let text = ''
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, done) {
      text += String(chunk)
      done()
    },
  }) as Writable & { text(): string; isTTY?: boolean; columns?: number }
  stream.text = () => text
  if (options.isTTY === true) {
    stream.isTTY = true
    stream.columns = 120
  }
  return stream
}
