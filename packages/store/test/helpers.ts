import { chmod, mkdtemp, open, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FsBlobStore } from '../src/index.js'

/** A fresh directory for one test. */
export function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'dcas-store-'))
}

export async function removeDir(dir: string | undefined): Promise<void> {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
}

/** Flips the lowest bit of one byte of a blob's file, as a failing disk would. */
export async function flipBit(store: FsBlobStore, id: string, offset = 0): Promise<void> {
  const path = store.path(id)
  await chmod(path, 0o600)
  const file = await open(path, 'r+')
  try {
    const byte = Buffer.alloc(1)
    await file.read(byte, 0, 1, offset)
    byte[0] = (byte[0] ?? 0) ^ 0x01
    await file.write(byte, 0, 1, offset)
  } finally {
    await file.close()
  }
}
