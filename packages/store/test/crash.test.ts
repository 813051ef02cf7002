import { createHash } from 'node:crypto'
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { openBlobStore, openIndex } from '../src/index.js'
import { collect } from '../src/testing/index.js'
import { runUntilKilled, seededRandom } from './child.js'
import { removeDir, tempDir } from './helpers.js'

const KILLS = 24
const seed = Number(process.env.DCAS_CRASH_SEED ?? Date.now() % 1_000_000)

describe('crash safety (SIGKILL at random moments; DCAS_CRASH_SEED replays a run)', () => {
  let dir: string

  beforeEach(async () => {
    dir = await tempDir()
  })

  afterEach(async () => {
    await removeDir(dir)
  })

  it(`leaves only whole blobs, an empty tmp/ and every acknowledged put after ${KILLS} kills of a writer`, async () => {
    const random = seededRandom(seed)
    const acknowledged = new Set<string>()
    const verified = new Map<string, number>()
    const readBack = new Map<string, number | undefined>()
    for (let kill = 0; kill < KILLS; kill++) {
      // Each run starts on another size (0 B, 1 B, 64 KiB-1, 64 KiB, 64 KiB+1, 4 MiB) and dies
      // after a random number of printed lines: between pieces, in an fsync, a rename...
      const { lines } = await runUntilKilled('blob-writer.ts', [dir, String(kill % 6), String(kill)], 1 + random(90))
      for (const line of lines) if (line.startsWith('ack ')) acknowledged.add(line.slice(4))

      const store = await openBlobStore({ root: dir })
      try {
        expect(await readdir(join(dir, 'tmp')), `seed ${seed}, kill ${kill}`).toEqual([])
        // A file keeps its bytes until a rename replaces its inode: hash each inode once.
        const files = (await readdir(join(dir, 'blobs'), { recursive: true, withFileTypes: true })).filter((e) => e.isFile())
        for (const file of files) {
          const path = join(file.parentPath, file.name)
          const { ino } = await stat(path)
          if (verified.get(path) === ino) continue
          const bytes = await readFile(path)
          expect(createHash('sha256').update(bytes).digest('hex'), `seed ${seed}, kill ${kill}: ${file.name}`).toBe(file.name)
          verified.set(path, ino)
        }
        for (const id of acknowledged) {
          if (readBack.has(id) && verified.get(store.path(id)) === readBack.get(id)) continue
          const bytes = await collect(store.get(id))
          expect(createHash('sha256').update(bytes).digest('hex'), `seed ${seed}, kill ${kill}: acknowledged ${id}`).toBe(id)
          readBack.set(id, verified.get(store.path(id)))
        }
      } finally {
        await store.close()
      }
    }
    // The runs did get somewhere: blobs were acknowledged, including the 4 MiB ones.
    expect(acknowledged.size).toBeGreaterThan(KILLS / 2)
  }, 300_000)

  it(`leaves only whole blobs, an empty tmp/ and every committed batch after ${KILLS} kills of a batch writer`, async () => {
    const random = seededRandom(seed + 2)
    const committed = new Set<string>()
    for (let kill = 0; kill < KILLS; kill++) {
      // Dies after a random number of lines: inside a put, before or inside a commit, between commits.
      const { lines } = await runUntilKilled('batch-writer.ts', [dir, String(kill % 7), String(kill)], 1 + random(40))
      for (const line of lines) if (line.startsWith('committed ')) for (const id of line.slice(10).split(' ')) committed.add(id)

      const store = await openBlobStore({ root: dir })
      try {
        expect(await readdir(join(dir, 'tmp')), `seed ${seed}, kill ${kill}`).toEqual([])
        for (const file of (await readdir(join(dir, 'blobs'), { recursive: true, withFileTypes: true })).filter((e) => e.isFile())) {
          const bytes = await readFile(join(file.parentPath, file.name))
          expect(createHash('sha256').update(bytes).digest('hex'), `seed ${seed}, kill ${kill}: ${file.name}`).toBe(file.name)
        }
        for (const id of committed) {
          const bytes = await collect(store.get(id))
          expect(createHash('sha256').update(bytes).digest('hex'), `seed ${seed}, kill ${kill}: committed ${id}`).toBe(id)
        }
      } finally {
        await store.close()
      }
    }
    expect(committed.size).toBeGreaterThan(KILLS)
  }, 300_000)

  it('never leaves half of a multi-record transaction when a writer is killed inside one', async () => {
    const random = seededRandom(seed + 1)
    const path = join(dir, 'index')
    let next = 0
    const committed = new Set<number>()
    for (let kill = 0; kill < 6; kill++) {
      const { lines } = await runUntilKilled('index-writer.ts', [path, String(next)], 1 + random(4))
      for (const line of lines) if (line.startsWith('committed ')) committed.add(Number(line.slice(10)))
      next += 100

      const index = await openIndex({ path })
      try {
        for (const [key, ref] of index.refs.entries({ prefix: 'batch/' })) {
          const batch = Number(key.slice(6))
          const counters = [...index.refcounts.entries({ prefix: `${String(batch).padStart(6, '0')}/` })]
          expect(counters.length, `batch ${batch}`).toBe(ref.size)
          expect(counters.every(([, count]) => count === batch + 1)).toBe(true)
        }
        const batches = new Set([...index.refs.entries({ prefix: 'batch/' })].map(([key]) => Number(key.slice(6))))
        const counted = new Set([...index.refcounts.entries()].map(([key]) => Number(key.split('/')[0])))
        expect(counted, `seed ${seed}, kill ${kill}: counters without their ref`).toEqual(batches)
        for (const batch of committed) expect(batches.has(batch), `seed ${seed}, kill ${kill}: committed batch ${batch}`).toBe(true)
      } finally {
        await index.close()
      }
    }
    expect(committed.size).toBeGreaterThan(0)
  }, 300_000)
})
