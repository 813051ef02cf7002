// How the disk store makes blobs durable: each blob is written into its own temp file (in the
// event loop: page-cache writes, no thread-pool round trip per call) and fsynced in the thread
// pool right away; a commit waits for those fsyncs, renames the files into place and fsyncs
// each directory it touched once, beside the parents of the directories it had to make. No blob
// is ever visible under its id before its bytes are durable, and a commit ends only when its
// blobs' names are durable too.
import { randomBytes } from 'node:crypto'
import { dirname, join } from 'node:path'
import { throwIfAborted } from '../internal/abort.js'
import { assertExpected } from '../internal/hash.js'
import { assertSource, hashPieces, isHashedBlob } from '../internal/hashed.js'
import type { AbortOptions, BlobInfo, BlobSource, BlobStoreFs } from '../types.js'
import type { Stager } from './batch.js'
import { closeQuietly, errnoOf, fsyncFd, ioSync, syncDirectory, toStoreError, unlinkQuietly, writeAllSync } from './disk-io.js'

/** Streamed pieces are copied into a reused buffer of this size and written when it is full. */
const WRITE_BUFFER = 1024 * 1024
/**
 * Write buffers kept for reuse between puts, shared by every disk store of the process (a holder keeps a store
 * per owner): enough for the puts a node makes at once, so that a put of a small blob allocates nothing.
 */
const POOLED_BUFFERS = 8
const pool: Buffer[] = []
/** fsyncs in the thread pool at once (it has 4 threads by default: leave one for reads). */
const FSYNCS_AT_ONCE = 3
/** A put waits for its own fsync once this many files of the store wait for theirs: it bounds open files. */
const MAX_UNSYNCED = 64

/** What {@link DiskWriter} returns for a directory already durable. */
const DURABLE: Promise<void> = Promise.resolve()

/** A fan-out directory's name under the root, in the default layout: `/blobs/ab/cd`. */
const FAN_OUT = /^[/\\]blobs[/\\]([0-9a-f]{2})[/\\]([0-9a-f]{2})$/

/**
 * A set of directory names under a store's root in a fixed 8 KiB: a bit for each of the 65,536 fan-out
 * directories, and a set of strings for any other name. What a store remembers of the directories it made
 * durable stays the same size however many blobs go through it.
 */
class DirectorySet {
  readonly #fanOut = new Uint8Array(65536 / 8)
  readonly #others = new Set<string>()

  has(name: string): boolean {
    const i = fanOutIndex(name)
    return i < 0 ? this.#others.has(name) : (this.#fanOut[i >> 3]! & (1 << (i & 7))) !== 0
  }

  add(name: string): void {
    const i = fanOutIndex(name)
    if (i < 0) this.#others.add(name)
    else this.#fanOut[i >> 3]! |= 1 << (i & 7)
  }

  delete(name: string): void {
    const i = fanOutIndex(name)
    if (i < 0) this.#others.delete(name)
    else this.#fanOut[i >> 3]! &= ~(1 << (i & 7))
  }
}

/** The bit of a fan-out directory's name in {@link DirectorySet}, or -1 for another name. */
function fanOutIndex(name: string): number {
  const m = FAN_OUT.exec(name)
  return m === null ? -1 : Number.parseInt(m[1]! + m[2]!, 16)
}

/** A blob written to a temp file, its fsync under way. */
export interface StagedFile extends BlobInfo {
  readonly tmpPath: string
  /** Settles when the file is durable (or its fsync failed) and closed. */
  readonly synced: Promise<void>
}

/** Runs at most `limit` tasks at once, the others in arrival order. */
class Limiter {
  #running = 0
  readonly #waiting: Array<() => void> = []

  constructor(readonly limit: number) {}

  /** Tasks started or waiting. */
  get pending(): number {
    return this.#running + this.#waiting.length
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#running >= this.limit) await new Promise<void>((resolve) => this.#waiting.push(resolve))
    else this.#running++
    try {
      return await task()
    } finally {
      const next = this.#waiting.shift()
      if (next === undefined) this.#running--
      else next()
    }
  }
}

/** The {@link Stager} of the disk store. */
export class DiskWriter implements Omit<Stager<StagedFile>, 'assertOpen' | 'track'> {
  readonly #fs: BlobStoreFs
  readonly #root: string
  readonly #tmp: string
  readonly #pathOf: (id: string) => string
  /** Temp names: a prefix per store instance and a counter (one store per root at a time). */
  readonly #prefix = randomBytes(6).toString('hex')
  #counter = 0
  readonly #fsyncs = new Limiter(FSYNCS_AT_ONCE)
  /** Blob directories this store made durable, by their path under the root (fan-out dirs are never removed). */
  readonly #durable = new DirectorySet()
  /** Blob directories being made durable, by the same names: their commits share one promise. */
  readonly #making = new Map<string, Promise<void>>()

  constructor(fs: BlobStoreFs, root: string, pathOf: (id: string) => string) {
    this.#fs = fs
    this.#root = root
    this.#tmp = join(root, 'tmp')
    this.#pathOf = pathOf
  }

  async stage(source: BlobSource, expected: string | undefined, options: AbortOptions): Promise<StagedFile> {
    const { signal } = options
    throwIfAborted(signal)
    if (expected !== undefined) this.#pathOf(expected)
    assertSource(source)
    // Bytes hashed beforehand are checked before anything is written.
    if (isHashedBlob(source)) assertExpected(expected, source.id)
    const fs = this.#fs
    const tmpPath = join(this.#tmp, `${this.#prefix}-${this.#counter++}.tmp`)
    // Read-only from birth, like git's objects: a blob is never written in place.
    const fd = ioSync(() => fs.openSync(tmpPath, 'wx', 0o400), 'create a temp file')
    let info: BlobInfo
    try {
      info = await this.#write(fd, source, signal)
      assertExpected(expected, info.id)
      throwIfAborted(signal)
    } catch (err) {
      closeQuietly(fs, fd)
      unlinkQuietly(fs, tmpPath)
      throw err
    }
    const synced = this.#fsyncs.run(() => fsyncFd(fs, fd, 'fsync a temp file')).finally(() => closeQuietly(fs, fd))
    // Observed by the commit; until then a failure must not count as unhandled.
    synced.catch(() => undefined)
    if (this.#fsyncs.pending > MAX_UNSYNCED) await synced.catch(() => undefined)
    return { ...info, tmpPath, synced }
  }

  /**
   * Writes the blob into `fd` and returns its id and size. Bytes in memory go in one
   * `writev`; streamed pieces are copied into a reused buffer and written 1 MiB at a time,
   * synchronously as they arrive (so a source may reuse its buffers, and no piece is kept).
   */
  async #write(fd: number, source: BlobSource, signal: AbortSignal | undefined): Promise<BlobInfo> {
    const fs = this.#fs
    if (isHashedBlob(source) || source instanceof Uint8Array || typeof source === 'string') {
      const pieces: Uint8Array[] = []
      const info = await hashPieces(source, signal, (piece) => void pieces.push(piece))
      writeAllSync(fs, fd, pieces)
      return info
    }
    const buffer = pool.pop() ?? Buffer.allocUnsafeSlow(WRITE_BUFFER)
    let filled = 0
    try {
      const info = await hashPieces(source, signal, (piece) => {
        if (filled === 0 && piece.byteLength >= WRITE_BUFFER) {
          writeAllSync(fs, fd, [piece])
          return
        }
        let at = 0
        while (at < piece.byteLength) {
          const n = Math.min(WRITE_BUFFER - filled, piece.byteLength - at)
          buffer.set(piece.subarray(at, at + n), filled)
          filled += n
          at += n
          if (filled === WRITE_BUFFER) {
            writeAllSync(fs, fd, [buffer])
            filled = 0
          }
        }
      })
      writeAllSync(fs, fd, [buffer.subarray(0, filled)])
      return info
    } finally {
      if (pool.length < POOLED_BUFFERS) pool.push(buffer)
    }
  }

  async place(staged: readonly StagedFile[], options: AbortOptions): Promise<void> {
    const fs = this.#fs
    const left = new Set(staged)
    try {
      const synced = await Promise.allSettled(staged.map((s) => s.synced))
      const failed = synced.find((r) => r.status === 'rejected')
      if (failed !== undefined) throw (failed).reason
      throwIfAborted(options.signal)
      const paths = new Map<string, string>(staged.map((s) => [s.id, this.#pathOf(s.id)]))
      const dirs = [...new Set([...paths.values()].map((path) => dirname(path)))]
      // The directories exist before any rename (one that cannot be made fails the commit here, with nothing
      // placed); their own entries become durable beside the renames' directory fsyncs.
      const entries = dirs.map((dir) => this.#makeDir(dir))
      const settled = Promise.all(entries)
      settled.catch(() => undefined)
      const placed = new Set<string>()
      const remade: Array<Promise<void>> = []
      for (const s of staged) {
        // The same bytes twice in one commit: one file is enough.
        if (placed.has(s.id)) unlinkQuietly(fs, s.tmpPath)
        else this.#rename(s.tmpPath, paths.get(s.id)!, remade)
        left.delete(s)
        placed.add(s.id)
      }
      await Promise.all([settled, ...remade, ...dirs.map((dir) => this.#fsyncs.run(() => syncDirectory(fs, dir)))])
    } catch (err) {
      await this.discard([...left])
      throw toStoreError(err, 'commit blobs')
    }
  }

  async discard(staged: readonly StagedFile[]): Promise<void> {
    // A file is removed once its fsync is over: it still holds the descriptor until then.
    await Promise.allSettled(staged.map((s) => s.synced))
    for (const s of staged) unlinkQuietly(this.#fs, s.tmpPath)
  }

  /**
   * Renames a durable temp file to its final name; an existing copy is replaced by the fresh, verified one.
   * When the directory went (someone removed it behind our back) it is made again, once, and the
   * durability of its new entry is added to `waits`.
   */
  #rename(tmpPath: string, path: string, waits: Array<Promise<void>>): void {
    const fs = this.#fs
    try {
      fs.renameSync(tmpPath, path)
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw toStoreError(err, 'rename a blob into place')
      this.#forget(dirname(path))
      waits.push(this.#makeDir(dirname(path)))
      ioSync(() => fs.renameSync(tmpPath, path), 'rename a blob into place')
    }
  }

  /**
   * Makes `dir` exist now (a synchronous call: no thread-pool round trip; it throws the typed error when
   * the directory cannot be made) and returns when its entry is durable: the first time this store
   * touches it, its parent is fsynced (and the parent of every ancestor it had to make). Concurrent
   * commits share one promise, so none ends before the directory it renamed into is durable; the fsyncs
   * run beside the commit's own, not before its renames. The promise is never left unhandled.
   */
  #makeDir(dir: string): Promise<void> {
    const name = this.#nameOf(dir)
    if (this.#durable.has(name)) return DURABLE
    const making = this.#making.get(name)
    if (making !== undefined) return making
    const first = ioSync(() => this.#fs.mkdirSync(dir, { recursive: true, mode: 0o700 }), 'create a blob directory')
    const top = dirname(first ?? dir)
    const parents: string[] = []
    for (let current = dirname(dir); ; current = dirname(current)) {
      parents.push(current)
      if (current === top || current === this.#root || dirname(current) === current) break
    }
    // Settled, it moves to the durable ones; unless the directory was forgotten meanwhile (see #rename).
    const made: Promise<void> = Promise.all(parents.map((parent) => this.#fsyncs.run(() => syncDirectory(this.#fs, parent)))).then(() => {
      if (this.#making.get(name) !== made) return
      this.#making.delete(name)
      this.#durable.add(name)
    })
    made.catch(() => {
      if (this.#making.get(name) === made) this.#making.delete(name)
    })
    this.#making.set(name, made)
    return made
  }

  /** Forgets that `dir` exists: the next commit into it makes it again. */
  #forget(dir: string): void {
    const name = this.#nameOf(dir)
    this.#durable.delete(name)
    this.#making.delete(name)
  }

  /** A blob directory's name in {@link #durable}: its path under the root. */
  #nameOf(dir: string): string {
    return dir.startsWith(this.#root) ? dir.slice(this.#root.length) : dir
  }
}
