// End to end: three dcas nodes in three processes on loopback, TCP + TLS 1.3, real data
// directories (the original topology: B dials A, C dials A and B; C owns the data). Beside them,
// in the same rounds, the raw pipeline (bench/raw/pipeline-node.ts: an owner and two peers in
// three processes doing the same work with node:crypto, node:fs and node:tls only) answers the
// same requests; it is the ceiling of each step:
//
// - store 1 GiB with two replicas;          - read it locally;
// - read it after local loss (the owner's `blobs/` removed while it runs, as the server tests do);
// - delete it (MB/s: the object's size over the time the delete takes);
// - 1,000 objects of 64 KiB: store, read, delete (ops/s, 8 requests in flight).
//
// In every round each step runs on dcas and on the raw pipeline back to back, the order turning
// with the round. Data is generated inside the owner process (`store(key, size, seed)`), so
// nothing large crosses IPC; every read is checked against the digest of what was stored. Big
// transfers are timed inside the owner process (as node-main reports them); small operations
// by the wall clock here. Peak RSS is polled every 50 ms in every process during each step;
// the last row gives each node's lifetime peak (getrusage), which the 160 MiB target is about.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { dataDigest, spawnNode, type NodeHandle } from '@dcas/server/testing'
import { bytesLabel, emit, GiB, inTurn, KiB, MiB, record, rounds, seconds, size, startWorker, withPeakRss, type HasUsage, type Round, type Worker } from '../lib.js'

const BIG = size(GiB, 4 * MiB)
const SMALL = 64 * KiB
const COUNT = size(1000, 16)
const IN_FLIGHT = 8
const bigLabel = bytesLabel(BIG)
const smallLabel = `${COUNT.toLocaleString('en')} × 64 KiB`

/** What the dcas node and the raw owner both answer. */
interface Owner {
  store(key: string, size: number, seed: string): Promise<{ ms: number; replicas?: string[]; sha256?: string }>
  read(key: string): Promise<{ size: number; sha256: string; ms: number }>
  delete(key: string): Promise<unknown>
}

interface System {
  owner: Owner
  /** Owner first, then its peers. */
  processes: HasUsage[]
  processNames: string[]
  /** The owner's directory of local plaintext blobs. */
  localBlobs: string
  ceiling: boolean
  name(step: string): string
}

const profiling = process.execArgv.includes('--cpu-prof')
const profileFlags = profiling ? process.execArgv.slice(process.execArgv.indexOf('--cpu-prof')).filter((a, i, all) => a.startsWith('--cpu-prof') || all[i - 1] === '--cpu-prof-dir') : []

async function startDcas(dir: string): Promise<{ system: System; nodes: NodeHandle[] }> {
  const start = (name: string, bootstrap: NodeHandle[]) =>
    spawnNode({ root: join(dir, name), clusterSecret: 'bench cluster secret', bootstrap: bootstrap.map((n) => n.address) }, { execArgv: profileFlags })
  const a = await start('a', [])
  const b = await start('b', [a])
  const c = await start('c', [a, b])
  await Promise.all([a, b, c].map((n) => n.waitForPeers(2)))
  await Promise.all([a, b, c].map((n) => n.waitForSync()))
  if (profiling) console.log(`node pids: C (owner) ${c.pid}, A ${a.pid}, B ${b.pid}`)
  return {
    nodes: [c, a, b],
    system: {
      owner: c,
      processes: [c, a, b],
      processNames: ['node C (owner)', 'node A', 'node B'],
      localBlobs: join(dir, 'c', 'blobs'),
      ceiling: false,
      name: (step) => `server: ${step}`,
    },
  }
}

async function startRaw(dir: string): Promise<{ system: System; workers: Worker[] }> {
  const file = fileURLToPath(new URL('../raw/pipeline-node.ts', import.meta.url))
  const [owner, p1, p2] = await Promise.all([
    startWorker(file, ['--role', 'owner', '--root', join(dir, 'raw-owner')]),
    startWorker(file, ['--role', 'peer', '--root', join(dir, 'raw-peer-1')]),
    startWorker(file, ['--role', 'peer', '--root', join(dir, 'raw-peer-2')]),
  ])
  await owner.call({ op: 'connect', ports: await Promise.all([p1, p2].map((p) => p.call<number>({ op: 'port' }))) })
  if (profiling) console.log(`raw pids: owner ${owner.pid}, peers ${p1.pid} ${p2.pid}`)
  return {
    workers: [owner, p1, p2],
    system: {
      owner: {
        store: (key, size, seed) => owner.call({ op: 'store', key, size, seed }),
        read: (key) => owner.call({ op: 'read', key }),
        delete: (key) => owner.call({ op: 'delete', key }),
      },
      processes: [owner, p1, p2],
      processNames: ['raw owner', 'raw peer 1', 'raw peer 2'],
      localBlobs: join(dir, 'raw-owner', 'blobs'),
      ceiling: true,
      name: (step) => `ceiling: raw pipeline, ${step}`,
    },
  }
}

/** Runs `fn(i)` for i in [0, count) with at most `limit` at once. */
async function pool(limit: number, count: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(limit, count) }, async () => {
      while (next < count) await fn(next++)
    }),
  )
}

/** One step on both systems, back to back (order turning with the round); records each. */
async function step(
  round: Round,
  systems: System[],
  names: { subject: string; ceiling: string },
  unit: 'MB/s' | 'ops/s',
  run: (system: System) => Promise<number>,
): Promise<void> {
  const results = await inTurn(
    round,
    systems.map((s) => () => withPeakRss(s.processes, () => run(s))),
  )
  systems.forEach((s, i) => {
    const { result: value, peakRssMiB } = results[i]!
    const base = { unit, value, peakRssMiB, processes: s.processNames }
    if (s.ceiling) record(round, { name: names.ceiling, ...base, isCeiling: true })
    else record(round, { name: names.subject, ...base, ceiling: names.ceiling })
  })
}

function check(what: string, got: { size: number; sha256: string }, size: number, digest: string): void {
  if (got.size !== size || got.sha256 !== digest) throw new Error(`${what}: read back ${got.size} bytes with sha256 ${got.sha256}, expected ${size} bytes with ${digest}`)
}

const dir = await mkdtemp(join(tmpdir(), 'dcas-bench-server-'))
let nodes: NodeHandle[] = []
let workers: Worker[] = []
try {
  // Both systems start at once (each mostly waits on its own processes' start-up).
  const [dcasStart, rawStart] = await Promise.allSettled([startDcas(dir), startRaw(dir)])
  if (dcasStart.status === 'fulfilled') nodes = dcasStart.value.nodes
  if (rawStart.status === 'fulfilled') workers = rawStart.value.workers
  if (dcasStart.status === 'rejected') throw dcasStart.reason
  if (rawStart.status === 'rejected') throw rawStart.reason
  const [dcas, raw] = [dcasStart.value, rawStart.value]
  const systems = [dcas.system, raw.system]
  const names = (subject: string, ceiling: string) => ({ subject: `server: ${subject}`, ceiling: `ceiling: raw pipeline, ${ceiling}` })

  for (const round of rounds()) {
    // Warm-ups run at the quick sizes at most.
    const big = round.warmUp ? Math.min(BIG, 8 * MiB) : BIG
    const count = round.warmUp ? Math.min(COUNT, 20) : COUNT
    const bigSeed = `big-${round.index}`
    // The digest to check reads against: what the dcas node reported (its child checks it against the data).
    let bigDigest = ''

    await step(round, systems, names(`store ${bigLabel}, 2 replicas`, `store ${bigLabel} (local + 2 peers over TLS)`), 'MB/s', async (s) => {
      const res = await s.owner.store('big', big, bigSeed)
      if (!s.ceiling) {
        if (res.replicas?.length !== 2) throw new Error(`the store reached ${res.replicas?.length} replicas, not 2`)
        bigDigest = res.sha256!
      }
      return big / 1e6 / (res.ms / 1000)
    })
    await step(round, systems, names(`read ${bigLabel} locally`, `read ${bigLabel} locally`), 'MB/s', async (s) => {
      const res = await s.owner.read('big')
      check(`${s.name('local read')}`, res, big, bigDigest)
      return big / 1e6 / (res.ms / 1000)
    })
    // The owner's local copy is removed (untimed) while it runs; the read fetches from peers and heals.
    for (const s of systems) await rm(s.localBlobs, { recursive: true, force: true })
    await step(round, systems, names(`read ${bigLabel} after local loss (from peers, healed)`, `read ${bigLabel} after local loss (from a peer, healed)`), 'MB/s', async (s) => {
      const res = await s.owner.read('big')
      check(`${s.name('read after loss')}`, res, big, bigDigest)
      return big / 1e6 / (res.ms / 1000)
    })
    await step(round, systems, names(`delete the ${bigLabel} object`, `delete the ${bigLabel} object (local files and both peers' copies)`), 'MB/s', async (s) => big / 1e6 / (await seconds(() => s.owner.delete('big'))))

    const keys = Array.from({ length: count }, (_, i) => `small-${round.index}-${i}`)
    const digests = await Promise.all(keys.map((k) => dataDigest(SMALL, k)))
    const small = (what: string) => names(`${what} ${smallLabel} (${IN_FLIGHT} in flight)`, `${what} ${smallLabel} (${IN_FLIGHT} in flight)`)
    await step(round, systems, small('store'), 'ops/s', async (s) => count / (await seconds(() => pool(IN_FLIGHT, count, async (i) => void (await s.owner.store(keys[i]!, SMALL, keys[i]!))))))
    await step(round, systems, small('read'), 'ops/s', async (s) =>
      count / (await seconds(() => pool(IN_FLIGHT, count, async (i) => check(`${s.name('small read')}`, await s.owner.read(keys[i]!), SMALL, digests[i]!)))),
    )
    await step(round, systems, small('delete'), 'ops/s', async (s) => count / (await seconds(() => pool(IN_FLIGHT, count, async (i) => void (await s.owner.delete(keys[i]!))))))
  }

  const lifetime = await Promise.all(dcas.system.processes.map(async (p) => (await p.usage()).maxRss / MiB))
  emit({ name: 'server: lifetime peak RSS of each node (getrusage)', unit: 'MiB', value: Math.max(...lifetime), peakRssMiB: lifetime, processes: dcas.system.processNames })
} finally {
  await Promise.allSettled([...nodes.map((n) => n.close()), ...workers.map((w) => w.close())])
  await rm(dir, { recursive: true, force: true })
}
