// File system calls of the disk store, with their failures turned into the store's typed errors.
import { constants } from 'node:fs'
import { DiskFullError, IoError, StoreError } from '../errors.js'
import type { BlobStoreFs } from '../types.js'

/** The `code` of a system error (`ENOENT`…), if it has one. */
export function errnoOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined
}

/** Maps a file system failure to the store's typed errors (typed errors pass through). */
export function toStoreError(err: unknown, what: string): StoreError {
  if (err instanceof StoreError) return err
  const code = errnoOf(err)
  if (code === 'ENOSPC' || code === 'EDQUOT') return new DiskFullError(`disk full while trying to ${what}`, { cause: err })
  return new IoError(`I/O error while trying to ${what}${code === undefined ? '' : ` (${code})`}`, { cause: err })
}

/** Awaits a file system call and turns its failure into a typed error. */
export async function io<T>(promise: Promise<T>, what: string): Promise<T> {
  try {
    return await promise
  } catch (err) {
    throw toStoreError(err, what)
  }
}

/** Runs a synchronous file system call and turns its failure into a typed error. */
export function ioSync<T>(call: () => T, what: string): T {
  try {
    return call()
  } catch (err) {
    throw toStoreError(err, what)
  }
}

/** fsync of an open file, in the thread pool (it waits on the disk); typed failure. */
export function fsyncFd(fs: BlobStoreFs, fd: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => fs.fsync(fd, (err) => (err === null ? resolve() : reject(toStoreError(err, what)))))
}

/** Writes every byte of `pieces` at the file's current offset, looping over short writes. */
export function writeAllSync(fs: BlobStoreFs, fd: number, pieces: readonly Uint8Array[]): void {
  let todo = pieces.filter((p) => p.byteLength > 0)
  while (todo.length > 0) {
    let written = ioSync(() => fs.writevSync(fd, todo as NodeJS.ArrayBufferView[]), 'write a temp file')
    if (written === 0) throw new IoError('a write to a temp file made no progress')
    let at = 0
    while (at < todo.length && written >= todo[at]!.byteLength) written -= todo[at++]!.byteLength
    todo = todo.slice(at)
    if (written > 0) todo[0] = todo[0]!.subarray(written)
  }
}

/** fsyncs a directory, so that the entries made or removed in it are durable. */
export async function syncDirectory(fs: BlobStoreFs, dir: string): Promise<void> {
  const fd = ioSync(() => fs.openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY), 'open a directory')
  try {
    await fsyncFd(fs, fd, 'fsync a directory')
  } finally {
    try {
      fs.closeSync(fd)
    } catch {
      // A directory opened read-only has nothing to lose at close.
    }
  }
}

/** Closes a file descriptor, ignoring failures (used on paths that already failed or are done). */
export function closeQuietly(fs: BlobStoreFs, fd: number): void {
  try {
    fs.closeSync(fd)
  } catch {
    // Nothing more to do: the file is being dropped, or its fsync already reported.
  }
}

/** Removes a file, ignoring failures (a temp file that may already be gone). */
export function unlinkQuietly(fs: BlobStoreFs, path: string): void {
  try {
    fs.unlinkSync(path)
  } catch {
    // Gone already, or the next open of the store removes it from tmp/.
  }
}
