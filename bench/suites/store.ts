// @dcas/store: put and get of 1 MiB blobs beside raw fs + SHA-256 of the same bytes, and index
// inserts and prefix listing beside raw LMDB, in the same run. Each pair (subject and ceiling)
// runs interleaved step by step, so that a busy machine slows both alike; blobs and index run in
// processes of their own, whose peak RSS (both of the pair's) is reported. Each process repeats
// its measurement once per round (lib.ts: a warm-up, then `--runs` recorded runs).
import { spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { openBlobStore, openIndex, type RefRecord } from '@dcas/store'
import { bytesLabel, MiB, peakRssMiB, quick, record, rounds, size, type Round } from '../lib.js'

const BLOB = MiB
const total = size(1024 * MiB, 16 * MiB)
const blobs = total / BLOB
const refs = size(1_000_000, 10_000)
const BATCH = 10_000
const PAGE = 1_000

const CEILING_WRITE = 'ceiling: fs write + fsync + sha256, 1 MiB files'
const CEILING_READ = 'ceiling: fs readFile + sha256, 1 MiB files'
/** Blobs per batch in the batched put, and the ceiling it is compared with. */
const GROUP = 64
const CEILING_GROUP = `ceiling: fs write + sha256 of ${GROUP} × 1 MiB files, then their fsyncs at once`
const CEILING_INSERT = 'ceiling: lmdb put, 10,000 per transaction'
const CEILING_LIST = 'ceiling: lmdb range read'
const sizeLabel = bytesLabel(total)
const refsLabel = refs.toLocaleString('en')

/** The same distinct 1 MiB blobs every time: a random block stamped with its number. */
function stamp(block: Buffer, n: number): Buffer {
  block.writeUInt32BE(n, 0)
  return block
}

function refRecord(n: number): RefRecord {
  return { manifestId: createHash('sha256').update(String(n)).digest('hex'), size: n, sha256: 'e'.repeat(64), version: 1, updatedAt: 1_700_000_000_000 + n }
}

const key = (n: number) => `refs/${String(n).padStart(8, '0')}`

/** The subset of `lmdb` the ceilings use, resolved through @dcas/store (its dependency, not ours). */
interface RawLmdb {
  open(options: { path: string; maxDbs: number }): RawRoot
}
interface RawDb {
  putSync(key: Buffer, value: unknown): void
  getRange(options: { start: Buffer }): Iterable<{ key: Buffer; value: unknown }>
}
interface RawRoot {
  openDB(options: { name: string; keyEncoding: 'binary'; structuredClone: boolean }): RawDb
  childTransaction(fn: () => void): Promise<unknown>
  flushed: Promise<void>
  close(): Promise<void>
}

async function rawLmdb(): Promise<RawLmdb> {
  const require = createRequire(fileURLToPath(import.meta.resolve('@dcas/store')))
  return (await import(pathToFileURL(require.resolve('lmdb')).href)) as RawLmdb
}

/**
 * Times two alternatives interleaved step by step (alternating which goes first), so that the
 * load of a shared machine falls on both alike; returns the seconds each took in total.
 */
class Interleaved {
  ceiling = 0
  subject = 0
  turn = 0

  async step(ceiling: () => unknown, subject: () => unknown): Promise<void> {
    const order = this.turn++ % 2 === 0 ? [ceiling, subject] : [subject, ceiling]
    for (const fn of order) {
      const start = performance.now()
      await fn()
      const seconds = (performance.now() - start) / 1000
      if (fn === ceiling) this.ceiling += seconds
      else this.subject += seconds
    }
  }
}

/** Measures `blobs` 1 MiB blobs (put, then get) in `dir`, and leaves `dir` empty. */
async function blobRound(dir: string, round: Round, blobs: number): Promise<void> {
  const total = blobs * BLOB
  const block = randomBytes(BLOB)
  // Distinct bytes in every round, so that no round finds the blobs of another.
  block.writeUInt32BE(round.index, 4)
  const raw = join(dir, 'raw')
  await mkdir(raw)
  const store = await openBlobStore({ root: join(dir, 'store') })
  const ids: string[] = []
  const put = new Interleaved()
  for (let n = 0; n < blobs; n++) {
    await put.step(
      async () => {
        const bytes = stamp(block, n)
        createHash('sha256').update(bytes).digest('hex')
        const file = await open(join(raw, String(n)), 'wx')
        await file.write(bytes)
        await file.sync()
        await file.close()
      },
      async () => ids.push((await store.put(stamp(block, n))).id),
    )
  }
  const rss = [peakRssMiB()]
  record(round, { name: CEILING_WRITE, unit: 'MB/s', value: total / 1e6 / put.ceiling, peakRssMiB: rss, isCeiling: true })
  record(round, { name: `store: put ${sizeLabel} as 1 MiB blobs`, unit: 'MB/s', value: total / 1e6 / put.subject, peakRssMiB: rss, ceiling: CEILING_WRITE })

  // The same bytes again (stamped apart), put in batches: written, then made durable together.
  const grouped = new Interleaved()
  const groupIds: string[] = []
  for (let first = 0; first < blobs; first += GROUP) {
    const last = Math.min(first + GROUP, blobs)
    await grouped.step(
      async () => {
        const files = []
        for (let n = first; n < last; n++) {
          const bytes = stamp(block, blobs + n)
          createHash('sha256').update(bytes).digest('hex')
          const file = await open(join(raw, `g${n}`), 'wx')
          await file.write(bytes)
          files.push(file)
        }
        await Promise.all(files.map(async (file) => {
          await file.sync()
          await file.close()
        }))
      },
      async () => {
        const batch = store.batch()
        for (let n = first; n < last; n++) groupIds.push((await batch.put(stamp(block, blobs + n))).id)
        await batch.commit()
      },
    )
  }
  const rssGrouped = [peakRssMiB()]
  record(round, { name: CEILING_GROUP, unit: 'MB/s', value: total / 1e6 / grouped.ceiling, peakRssMiB: rssGrouped, isCeiling: true })
  record(round, { name: `store: put ${sizeLabel} as 1 MiB blobs, ${GROUP} per batch`, unit: 'MB/s', value: total / 1e6 / grouped.subject, peakRssMiB: rssGrouped, ceiling: CEILING_GROUP })
  for (const id of groupIds) await store.delete(id)

  const get = new Interleaved()
  let read = 0
  for (let n = 0; n < blobs; n++) {
    await get.step(
      // readFile: a fresh buffer per file, as any reader that hands the bytes on must allocate.
      async () => createHash('sha256').update(await readFile(join(raw, String(n)))).digest('hex'),
      async () => {
        for await (const piece of store.get(ids[n] ?? '')) read += piece.byteLength
      },
    )
  }
  if (read !== total) throw new Error(`read ${read} bytes, expected ${total}`)
  const rssAfter = [peakRssMiB()]
  record(round, { name: CEILING_READ, unit: 'MB/s', value: total / 1e6 / get.ceiling, peakRssMiB: rssAfter, isCeiling: true })
  record(round, { name: `store: get ${sizeLabel} as 1 MiB blobs (verified)`, unit: 'MB/s', value: total / 1e6 / get.subject, peakRssMiB: rssAfter, ceiling: CEILING_READ })
  for (const id of ids) await store.delete(id)
  await store.close()
  await rm(join(dir, 'store'), { recursive: true, force: true })
  await rm(raw, { recursive: true, force: true })
}

/** Inserts `refs` refs into a fresh index and a fresh raw LMDB in `dir`, lists them, and removes both. */
async function indexRound(dir: string, round: Round, refs: number): Promise<void> {
  const lmdb = await rawLmdb()
  const root = lmdb.open({ path: join(dir, 'raw.mdb'), maxDbs: 8 })
  const db = root.openDB({ name: 'refs', keyEncoding: 'binary', structuredClone: true })
  const index = await openIndex({ path: join(dir, 'index') })
  const insert = new Interleaved()
  for (let start = 0; start < refs; start += BATCH) {
    const end = Math.min(start + BATCH, refs)
    await insert.step(
      async () => {
        await root.childTransaction(() => {
          for (let n = start; n < end; n++) db.putSync(Buffer.from(key(n)), refRecord(n))
        })
        await root.flushed
      },
      () =>
        index.transaction((tx) => {
          for (let n = start; n < end; n++) tx.put(index.refs, key(n), refRecord(n))
        }),
    )
  }
  let rss = [peakRssMiB()]
  record(round, { name: CEILING_INSERT, unit: 'ops/s', value: refs / insert.ceiling, peakRssMiB: rss, isCeiling: true })
  record(round, { name: `index: insert ${refsLabel} refs, 10,000 per transaction`, unit: 'ops/s', value: refs / insert.subject, peakRssMiB: rss, ceiling: CEILING_INSERT })

  const prefix = Buffer.from('refs/')
  const list = new Interleaved()
  list.turn = round.index
  await list.step(
    () => {
      let listed = 0
      for (const { key: k, value } of db.getRange({ start: prefix })) {
        if (prefix.compare(k, 0, prefix.byteLength) !== 0) break
        k.toString('utf8')
        void value
        listed++
      }
      if (listed !== refs) throw new Error(`raw listed ${listed}, expected ${refs}`)
    },
    () => {
      let listed = 0
      let after: string | undefined
      for (;;) {
        let last: string | undefined
        for (const [k] of index.refs.entries({ prefix: 'refs/', after, limit: PAGE })) {
          last = k
          listed++
        }
        if (last === undefined) break
        after = last
      }
      if (listed !== refs) throw new Error(`listed ${listed}, expected ${refs}`)
    },
  )
  rss = [peakRssMiB()]
  record(round, { name: CEILING_LIST, unit: 'ops/s', value: refs / list.ceiling, peakRssMiB: rss, isCeiling: true })
  record(round, { name: `index: list ${refsLabel} refs by prefix, pages of 1,000`, unit: 'ops/s', value: refs / list.subject, peakRssMiB: rss, ceiling: CEILING_LIST })
  await index.close()
  await root.close()
  await rm(join(dir, 'index'), { recursive: true, force: true })
  await rm(join(dir, 'raw.mdb'), { recursive: true, force: true })
  await rm(join(dir, 'raw.mdb-lock'), { force: true })
}

// Warm-up rounds run at the quick sizes at most: they are for the JIT and the page cache.
const measurements: Record<string, (dir: string) => Promise<void>> = {
  async blobs(dir) {
    for (const round of rounds()) await blobRound(dir, round, round.warmUp ? Math.min(blobs, 16) : blobs)
  },
  async index(dir) {
    for (const round of rounds()) await indexRound(dir, round, round.warmUp ? Math.min(refs, 10_000) : refs)
  },
}

const [mode, name, dir] = process.argv.slice(2).filter((arg) => arg !== '--quick')
if (mode === '--measure' && name !== undefined && dir !== undefined) {
  const measure = measurements[name]
  if (measure === undefined) throw new Error(`unknown measurement ${name}`)
  await measure(dir)
} else {
  const dir = await mkdtemp(join(tmpdir(), 'dcas-bench-store-'))
  try {
    for (const measurement of Object.keys(measurements)) {
      const args = ['--import', 'tsx', fileURLToPath(import.meta.url), '--measure', measurement, dir]
      const res = spawnSync(process.execPath, quick ? [...args, '--quick'] : args, { stdio: 'inherit' })
      if (res.status !== 0) throw new Error(`measurement ${measurement} failed with status ${res.status}`)
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
