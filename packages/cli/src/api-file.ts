// `DIR/api.json`: how the commands find a running node, and wait for one that is starting.
import { readFile, unlink } from 'node:fs/promises'
import { paths } from './config.js'
import { writeFileAtomic } from './files.js'

/** What `dcas serve` writes to `DIR/api.json` (mode 0600) so other commands find the node. */
export interface ApiFile {
  /** `http://127.0.0.1:PORT` */
  url: string
  /** The bearer token of this run. */
  token: string
  pid: number
  nodeId: string
  /** Where the node listens for peers. */
  address: string
  startedAt: number
  /** The S3 gateway, when `dcas serve --s3` runs it: its URL, region and access key. */
  s3?: { url: string; region: string; accessKeyId: string; secretAccessKey: string }
}

/** What `api.json` holds while `dcas serve` starts: its pid, and no URL or token yet. */
interface StartingFile {
  pid: number
  startedAt: number
  starting: true
}

async function readJson(root: string): Promise<Partial<ApiFile & StartingFile> | undefined> {
  try {
    return JSON.parse(await readFile(paths(root).api, 'utf8')) as Partial<ApiFile & StartingFile>
  } catch {
    return undefined
  }
}

/** Reads `DIR/api.json`; `undefined` when there is none, it does not parse, or the node is still starting. */
export async function readApiFile(root: string): Promise<ApiFile | undefined> {
  const parsed = await readJson(root)
  if (typeof parsed?.url !== 'string' || typeof parsed.token !== 'string') return undefined
  return parsed as ApiFile
}

/** Whether a process runs with this pid. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Marks `DIR/api.json` as starting (this process's pid), so that a command run meanwhile waits for the
 * node rather than say none runs. Resolves to the function that removes the mark if startup fails.
 */
export async function markStarting(root: string, startedAt: number): Promise<() => Promise<void>> {
  const current = await readJson(root)
  // Another live process's file stays: `startDaemon` tells whether that node answers and refuses to start.
  if (typeof current?.pid === 'number' && current.pid !== process.pid && alive(current.pid)) return () => Promise.resolve()
  const mark: StartingFile = { pid: process.pid, startedAt, starting: true }
  await writeFileAtomic(paths(root).api, `${JSON.stringify(mark)}\n`)
  return async () => {
    const current = await readJson(root)
    if (current?.starting === true && current.pid === process.pid) await unlink(paths(root).api).catch(() => {})
  }
}

/** While a `dcas serve` for `root` is starting (its process alive), checks again this often. */
const STARTING_POLL_MS = 100

/**
 * The node's `api.json`, waiting up to `timeout` ms while its `dcas serve` is still starting;
 * `undefined` when no node runs or starts there.
 */
export async function waitForApiFile(root: string, options: { timeout?: number; signal?: AbortSignal; onStarting?: (pid: number) => void } = {}): Promise<ApiFile | undefined> {
  const deadline = Date.now() + (options.timeout ?? 60_000)
  let told = false
  for (;;) {
    const parsed = await readJson(root)
    if (typeof parsed?.url === 'string' && typeof parsed.token === 'string') return parsed as ApiFile
    if (parsed?.starting !== true || typeof parsed.pid !== 'number' || !alive(parsed.pid) || Date.now() > deadline) return undefined
    if (!told) options.onStarting?.(parsed.pid)
    told = true
    options.signal?.throwIfAborted()
    await new Promise((resolve) => setTimeout(resolve, STARTING_POLL_MS))
  }
}
