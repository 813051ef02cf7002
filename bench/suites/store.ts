// @dcas/store: put and get of 1 MiB blobs beside raw fs + SHA-256 of the same bytes, and index
// inserts and prefix listing beside raw LMDB, all in the same run. Each measurement runs in its
// own process so that its peak RSS is its own.
import { spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, open, readdir, readFile, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { openBlobStore, openIndex, type RefRecord } from '@dcas/store'
import { emit, MiB, peakRssMiB, quick, size, throughput } from '../lib.js'

const BLOB = MiB
const total = size(1024 * MiB, 64 * MiB)
const blobs = total / BLOB
const refs = size(1_000_000, 50_000)
const BATCH = 10_000
const PAGE = 1_000

const CEILING_WRITE = 'ceiling: fs write + fsync + sha256, 1 MiB files'
const CEILING_READ = 'ceiling: fs readFile + sha256, 1 MiB files'
const CEILING_INSERT = 'ceiling: lmdb put, 10,000 per transaction'
const CEILING_LIST = 'ceiling: lmdb range read'
const sizeLabel = quick ? '64 MiB' : '1 GiB'

/** The same distinct 1 MiB blobs every time: a random block stamped with its number. */
function stamp(block: Buffer, n: number): Buffer {
  block.writeUInt32BE(n, 0)
  return block
}

function record(n: number): RefRecord {
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

const measurements: Record<string, (dir: string) => Promise<void>> = {
  async 'raw-write'(dir) {
    const block = randomBytes(BLOB)
    await mkdir(join(dir, 'raw'))
    const value = await throughput(total, async () => {
      for (let n = 0; n < blobs; n++) {
        const bytes = stamp(block, n)
        createHash('sha256').update(bytes).digest('hex')
        const file = await open(join(dir, 'raw', String(n)), 'wx')
        await file.write(bytes)
        await file.sync()
        await file.close()
      }
    })
    emit({ name: CEILING_WRITE, unit: 'MB/s', value, peakRssMiB: [peakRssMiB()], isCeiling: true })
  },

  async put(dir) {
    const block = randomBytes(BLOB)
    const store = await openBlobStore({ root: join(dir, 'store') })
    const value = await throughput(total, async () => {
      for (let n = 0; n < blobs; n++) await store.put(stamp(block, n))
    })
    await store.close()
    emit({ name: `store: put ${sizeLabel} as 1 MiB blobs`, unit: 'MB/s', value, peakRssMiB: [peakRssMiB()], ceiling: CEILING_WRITE })
  },

  async 'raw-read'(dir) {
    // readFile: a fresh buffer per file, as any reader that hands the bytes on must allocate.
    const names = await readdir(join(dir, 'raw'))
    const value = await throughput(total, async () => {
      for (const name of names) createHash('sha256').update(await readFile(join(dir, 'raw', name))).digest('hex')
    })
    emit({ name: CEILING_READ, unit: 'MB/s', value, peakRssMiB: [peakRssMiB()], isCeiling: true })
  },

  async get(dir) {
    const store = await openBlobStore({ root: join(dir, 'store') })
    const ids: string[] = []
    for await (const id of store.list()) ids.push(id)
    let read = 0
    const value = await throughput(total, async () => {
      for (const id of ids) for await (const piece of store.get(id)) read += piece.byteLength
    })
    await store.close()
    if (read !== total) throw new Error(`read ${read} bytes, expected ${total}`)
    emit({ name: `store: get ${sizeLabel} as 1 MiB blobs (verified)`, unit: 'MB/s', value, peakRssMiB: [peakRssMiB()], ceiling: CEILING_READ })
  },

  async 'raw-index'(dir) {
    const lmdb = await rawLmdb()
    const root = lmdb.open({ path: join(dir, 'raw.mdb'), maxDbs: 8 })
    const db = root.openDB({ name: 'refs', keyEncoding: 'binary', structuredClone: true })
    const inserts = await rate(refs, async () => {
      for (let start = 0; start < refs; start += BATCH) {
        await root.childTransaction(() => {
          for (let n = start; n < Math.min(start + BATCH, refs); n++) db.putSync(Buffer.from(key(n)), record(n))
        })
        await root.flushed
      }
    })
    emit({ name: CEILING_INSERT, unit: 'ops/s', value: inserts, peakRssMiB: [peakRssMiB()], isCeiling: true })
    const prefix = Buffer.from('refs/')
    let listed = 0
    const listing = await rate(refs, () => {
      for (const { key: k, value } of db.getRange({ start: prefix })) {
        void value
        if (prefix.compare(k, 0, prefix.byteLength) !== 0) break
        k.toString('utf8')
        listed++
      }
    })
    if (listed !== refs) throw new Error(`listed ${listed}, expected ${refs}`)
    emit({ name: CEILING_LIST, unit: 'ops/s', value: listing, peakRssMiB: [peakRssMiB()], isCeiling: true })
    await root.close()
  },

  async index(dir) {
    const index = await openIndex({ path: join(dir, 'index') })
    const inserts = await rate(refs, async () => {
      for (let start = 0; start < refs; start += BATCH) {
        await index.transaction((tx) => {
          for (let n = start; n < Math.min(start + BATCH, refs); n++) tx.put(index.refs, key(n), record(n))
        })
      }
    })
    emit({ name: `index: insert ${refs.toLocaleString('en')} refs, 10,000 per transaction`, unit: 'ops/s', value: inserts, peakRssMiB: [peakRssMiB()], ceiling: CEILING_INSERT })
    let listed = 0
    const listing = await rate(refs, () => {
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
    })
    if (listed !== refs) throw new Error(`listed ${listed}, expected ${refs}`)
    emit({ name: `index: list ${refs.toLocaleString('en')} refs by prefix, pages of 1,000`, unit: 'ops/s', value: listing, peakRssMiB: [peakRssMiB()], ceiling: CEILING_LIST })
    await index.close()
  },
}

/** Operations per second for `count` operations done by `fn`. */
async function rate(count: number, fn: () => Promise<void> | void): Promise<number> {
  const start = performance.now()
  await fn()
  return count / ((performance.now() - start) / 1000)
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
