import { execFileSync } from 'node:child_process'
import * as nodeFs from 'node:fs'
import * as fsPromises from 'node:fs/promises'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { openBlobStore, type BlobStoreFs, type FsBlobStore } from '../src/index.js'
import { collect, patternBytes, sha256, toArray } from '../src/testing/index.js'
import { removeDir, tempDir } from './helpers.js'

const DISK = 2 * 1024 * 1024

/** Whether this process may mount a tmpfs (it runs as root and the kernel lets it); DCAS_STORE_TEST_NO_TMPFS=1 forces the fallback. */
async function canMountTmpfs(): Promise<boolean> {
  if (process.env.DCAS_STORE_TEST_NO_TMPFS === '1' || process.getuid?.() !== 0) return false
  const dir = await tempDir()
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { stdio: 'ignore' })
    execFileSync('umount', [dir], { stdio: 'ignore' })
    return true
  } catch {
    return false
  } finally {
    await removeDir(dir)
  }
}

/** A `node:fs/promises` whose files together may hold at most `limit` bytes; writes past it fail with ENOSPC. */
function smallDisk(limit: number): BlobStoreFs {
  const used = new Map<string, number>()
  const pathOf = new Map<number, string>()
  const total = () => [...used.values()].reduce((a, b) => a + b, 0)
  const openSync = ((path: string, flags: string | number, mode?: number) => {
    const fd = nodeFs.openSync(path, flags, mode)
    if (flags === 'wx') {
      used.set(path, 0)
      pathOf.set(fd, path)
    }
    return fd
  }) as BlobStoreFs['openSync']
  const writevSync = ((fd: number, buffers: readonly NodeJS.ArrayBufferView[]) => {
    const path = pathOf.get(fd)
    if (path === undefined) return nodeFs.writevSync(fd, buffers)
    const room = limit - total()
    if (room <= 0) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' })
    // A short write up to the room left, as a real disk gives, then ENOSPC on the next call.
    const first = buffers[0]!
    const piece = new Uint8Array(first.buffer, first.byteOffset, Math.min(first.byteLength, room))
    const written = nodeFs.writevSync(fd, [piece])
    used.set(path, (used.get(path) ?? 0) + written)
    return written
  }) as BlobStoreFs['writevSync']
  return {
    ...nodeFs,
    ...fsPromises,
    openSync,
    writevSync,
    closeSync: (fd) => {
      pathOf.delete(fd)
      nodeFs.closeSync(fd)
    },
    unlinkSync: (path) => {
      nodeFs.unlinkSync(path)
      used.delete(String(path))
    },
    unlink: async (path) => {
      await fsPromises.unlink(path)
      used.delete(String(path))
    },
    renameSync: (from, to) => {
      nodeFs.renameSync(from, to)
      used.set(String(to), used.get(String(from)) ?? 0)
      used.delete(String(from))
    },
  }
}

const mountable = await canMountTmpfs()

describe(mountable ? 'disk full, on a 2 MiB tmpfs' : 'disk full, through an injected fs that fails with ENOSPC (no tmpfs could be mounted)', () => {
  let root: string
  let store: FsBlobStore | undefined

  beforeEach(async () => {
    root = await tempDir()
    if (mountable) execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${DISK}`, 'tmpfs', root])
    store = await openBlobStore({ root, fs: mountable ? undefined : smallDisk(DISK) })
  })

  afterEach(async () => {
    await store?.close()
    if (mountable) execFileSync('umount', [root])
    await removeDir(root)
  })

  it('fails a put that does not fit with ERR_DISK_FULL and keeps no partial blob', async () => {
    const active = store!
    const small = await active.put(patternBytes(1024, 1))
    const big = patternBytes(4 * 1024 * 1024, 2)
    await expect(active.put(big)).rejects.toMatchObject({ code: 'ERR_DISK_FULL', cause: { code: 'ENOSPC' } })
    expect(await readdir(join(root, 'tmp'))).toEqual([])
    expect(await toArray(active.list())).toEqual([small.id])
    expect(await active.has(sha256(big))).toBe(false)
  })

  it('still serves reads and takes puts that fit once a put failed for space', async () => {
    const active = store!
    const kept = patternBytes(512 * 1024, 3)
    const { id } = await active.put(kept)
    await expect(active.put(patternBytes(4 * 1024 * 1024, 4))).rejects.toMatchObject({ code: 'ERR_DISK_FULL' })
    expect((await collect(active.get(id))).equals(kept)).toBe(true)
    const later = await active.put('small enough')
    expect((await collect(active.get(later.id))).toString()).toBe('small enough')
  })
})
