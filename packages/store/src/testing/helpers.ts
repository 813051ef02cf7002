import { createHash } from 'node:crypto'
import { setImmediate } from 'node:timers/promises'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

let gc: (() => void) | undefined

/**
 * The V8 heap in use after full garbage collections, for tests of what code keeps in memory: each one runs
 * after the current job (a `WeakRef` keeps its target until the end of the job that made it), and the
 * second after the finalizers the first one let run. Turns on `--expose-gc` in this process.
 */
export async function heapAfterGc(): Promise<number> {
  if (gc === undefined) {
    setFlagsFromString('--expose-gc')
    gc = runInNewContext('gc') as () => void
  }
  await setImmediate()
  gc()
  await setImmediate()
  gc()
  return process.memoryUsage().heapUsed
}

/** Collects a (small) byte stream into one buffer: for tests only. */
export async function collect(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const part of stream) parts.push(part)
  return Buffer.concat(parts)
}

/** Lowercase hex SHA-256 of `bytes`. */
export function sha256(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/** `count` deterministic pseudo-random bytes (xorshift), different for each `seed`. */
export function patternBytes(count: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(count)
  let x = (seed * 2654435761) >>> 0 || 1
  for (let i = 0; i < count; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

/** Two different contents whose ids share their first four hex digits (the default store's fan-out directory). */
export function siblingContents(): [string, string] {
  const seen = new Map<string, string>()
  for (let i = 0; ; i++) {
    const content = `sibling ${i}`
    const prefix = sha256(content).slice(0, 4)
    const other = seen.get(prefix)
    if (other !== undefined) return [other, content]
    seen.set(prefix, content)
  }
}

/** Collects an async iterable into an array: for tests only. */
export async function toArray<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = []
  for await (const item of iterable) items.push(item)
  return items
}
