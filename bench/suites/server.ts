// End to end: three dcas nodes in three processes on loopback, TCP + TLS 1.3, real data
// directories (the original topology: B dials A, C dials A and B; C owns the data). Beside them,
// in the same rounds, two ceilings answer the same requests, each in three processes too:
//
// - the machine ceiling (bench/raw/machine-node.ts): what this machine does with the same bytes,
//   durably — hash once, seal ChaCha20-Poly1305 per 64 KiB record, write locally and stream to
//   two peer processes that write it, one fsync per object per node, one acknowledgement per
//   object per peer. Every dcas figure is compared with it.
// - the design replay (bench/raw/pipeline-node.ts): dcas's own choices without dcas (an fsync
//   per 1 MiB chunk on every node, a request and acknowledgement per chunk). It was the ceiling
//   before; it stays beside the others, labelled as such, with its own ratio to the machine.
//
// The steps:
// - store 256 MiB with two replicas;        - read it locally;
// - read it after local loss (the owner's local copy removed while it runs, as the server tests do);
// - delete it (MB/s: the object's size over the time the delete takes);
// - 1,000 objects of 64 KiB: store, read, delete (ops/s, 8 requests in flight).
//
// In every round each step runs on the three systems back to back, the order turning with the
// round. Data is generated inside the owner process (`store(key, size, seed)`), so nothing large
// crosses IPC; every read is checked against the digest of what was stored. Big transfers are
// timed inside the owner process (as node-main reports them); small operations by the wall
// clock here. Peak RSS is polled every 50 ms in every process during each step; the last row
// gives each node's lifetime peak (getrusage). The CPU rows add up the CPU time (user + system,
// /proc/<pid>/stat) of all three processes of a system during the step, per GB of object data,
// less the caller's own work that every owner does as a dcas node's child does (generating the
// data and checking its digest; the caller's digest of a read), measured alone in each round.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { NODE_FLAGS } from '@dcas/server'
import { dataDigest, spawnNode, type NodeHandle } from '@dcas/server/testing'
import { bytesLabel, emit, inTurn, KiB, MiB, record, rounds, seconds, size, startWorker, withCpu, withPeakRss, type HasUsage, type Round, type Worker } from '../lib.js'

const BIG = size(256 * MiB, 4 * MiB)
const SMALL = 64 * KiB
const COUNT = size(1000, 16)
const IN_FLIGHT = 8
const bigLabel = bytesLabel(BIG)
const smallLabel = `${COUNT.toLocaleString('en')} × 64 KiB`

/** What the dcas node and the raw owners all answer. */
interface Owner {
  store(key: string, size: number, seed: string): Promise<{ ms: number; replicas?: string[]; sha256?: string }>
  read(key: string): Promise<{ size: number; sha256: string; ms: number }>
  delete(key: string): Promise<unknown>
}

type Kind = 'dcas' | 'machine' | 'replay'

interface System {
  kind: Kind
  owner: Owner
  /** Owner first, then its peers. */
  processes: Array<HasUsage & { pid: number }>
  processNames: string[]
  /** The owner's directory of local copies. */
  localBlobs: string
}

/** Row names: dcas's, and each ceiling's, of one step. */
function rowName(kind: Kind, step: string): string {
  if (kind === 'dcas') return `server: ${step}`
  if (kind === 'machine') return `machine ceiling: ${step}`
  return `design replay (dcas's per-chunk choices without dcas): ${step}`
}

const profiling = process.execArgv.includes('--cpu-prof')
const profileFlags = profiling ? process.execArgv.slice(process.execArgv.indexOf('--cpu-prof')).filter((a, i, all) => a.startsWith('--cpu-prof') || all[i - 1] === '--cpu-prof-dir') : []

async function startDcas(dir: string): Promise<{ system: System; nodes: NodeHandle[] }> {
  const start = (name: string, bootstrap: NodeHandle[]) =>
    spawnNode({ root: join(dir, name), clusterSecret: 'bench cluster secret', bootstrap: bootstrap.map((n) => n.address), writeQuorum: 'all' }, { execArgv: profileFlags })
  const a = await start('a', [])
  const b = await start('b', [a])
  const c = await start('c', [a, b])
  await Promise.all([a, b, c].map((n) => n.waitForPeers(2)))
  await Promise.all([a, b, c].map((n) => n.waitForSync()))
  if (profiling) console.log(`node pids: C (owner) ${c.pid}, A ${a.pid}, B ${b.pid}`)
  return {
    nodes: [c, a, b],
    system: { kind: 'dcas', owner: c, processes: [c, a, b], processNames: ['node C (owner)', 'node A', 'node B'], localBlobs: join(dir, 'c', 'blobs') },
  }
}

/**
 * One of the raw systems: an owner and two peers, bench workers running `file`, with the V8 flags
 * a dcas node runs with (spawnNode's and the `dcas` command's), so that no system gets a heap the
 * others lack.
 */
async function startRaw(dir: string, kind: Kind, file: string, prefix: string, localDir: string): Promise<{ system: System; workers: Worker[] }> {
  const path = fileURLToPath(new URL(file, import.meta.url))
  const [owner, p1, p2] = await Promise.all([
    startWorker(path, ['--role', 'owner', '--root', join(dir, `${prefix}-owner`)], NODE_FLAGS),
    startWorker(path, ['--role', 'peer', '--root', join(dir, `${prefix}-peer-1`)], NODE_FLAGS),
    startWorker(path, ['--role', 'peer', '--root', join(dir, `${prefix}-peer-2`)], NODE_FLAGS),
  ])
  await owner.call({ op: 'connect', ports: await Promise.all([p1, p2].map((p) => p.call<number>({ op: 'port' }))) })
  if (profiling) console.log(`${prefix} pids: owner ${owner.pid}, peers ${p1.pid} ${p2.pid}`)
  return {
    workers: [owner, p1, p2],
    system: {
      kind,
      owner: {
        store: (key, size, seed) => owner.call({ op: 'store', key, size, seed }),
        read: (key) => owner.call({ op: 'read', key }),
        delete: (key) => owner.call({ op: 'delete', key }),
      },
      processes: [owner, p1, p2],
      processNames: [`${prefix} owner`, `${prefix} peer 1`, `${prefix} peer 2`],
      localBlobs: join(dir, `${prefix}-owner`, localDir),
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

/** What a step reports for the CPU rows: the bytes it moved and the caller's own CPU seconds to take off. */
interface CpuAccount {
  label: string
  bytes: number
  harnessSeconds: number
}

/**
 * One step on every system, back to back (order turning with the round); records each, compared
 * with the machine ceiling, and with `cpu`, a CPU-per-GB row of each.
 */
async function step(round: Round, systems: System[], name: string, unit: 'MB/s' | 'ops/s', run: (system: System) => Promise<number>, cpu?: CpuAccount): Promise<void> {
  const results = await inTurn(
    round,
    systems.map((s) => () => withPeakRss(s.processes, () => withCpu(s.processes.map((p) => p.pid), () => run(s)))),
  )
  const ceiling = rowName('machine', name)
  const cpuCeiling = cpu === undefined ? '' : rowName('machine', `CPU per GB, ${cpu.label}`)
  systems.forEach((s, i) => {
    const { result, peakRssMiB } = results[i]!
    const base = { unit, value: result.result, peakRssMiB, processes: s.processNames }
    const compared = s.kind === 'machine' ? { isCeiling: true } : { ceiling }
    record(round, { name: rowName(s.kind, name), ...base, ...compared })
    if (cpu === undefined) return
    const value = Math.max(0, result.cpuSeconds - cpu.harnessSeconds) / (cpu.bytes / 1e9)
    record(round, { name: rowName(s.kind, `CPU per GB, ${cpu.label}`), unit: 'CPU s/GB', value, peakRssMiB, processes: s.processNames, ...(s.kind === 'machine' ? { isCeiling: true } : { ceiling: cpuCeiling }) })
  })
}

function check(what: string, got: { size: number; sha256: string }, size: number, digest: string): void {
  if (got.size !== size || got.sha256 !== digest) throw new Error(`${what}: read back ${got.size} bytes with sha256 ${got.sha256}, expected ${size} bytes with ${digest}`)
}

const dir = await mkdtemp(join(tmpdir(), 'dcas-bench-server-'))
let nodes: NodeHandle[] = []
const workers: Worker[] = []
try {
  // The systems start at once (each mostly waits on its own processes' start-up).
  const [dcasStart, machineStart, replayStart] = await Promise.allSettled([
    startDcas(dir),
    startRaw(dir, 'machine', '../raw/machine-node.ts', 'machine', 'objects'),
    startRaw(dir, 'replay', '../raw/pipeline-node.ts', 'replay', 'blobs'),
  ])
  if (dcasStart.status === 'fulfilled') nodes = dcasStart.value.nodes
  for (const started of [machineStart, replayStart]) if (started.status === 'fulfilled') workers.push(...started.value.workers)
  for (const started of [dcasStart, machineStart, replayStart]) if (started.status === 'rejected') throw started.reason
  const dcas = (dcasStart as PromiseFulfilledResult<{ system: System }>).value.system
  const machine = (machineStart as PromiseFulfilledResult<{ system: System; workers: Worker[] }>).value
  const replay = (replayStart as PromiseFulfilledResult<{ system: System }>).value.system
  const systems = [dcas, machine.system, replay]
  const calibrator = machine.workers[0]!

  for (const round of rounds()) {
    // Warm-ups run at the quick sizes at most.
    const big = round.warmUp ? Math.min(BIG, 8 * MiB) : BIG
    const count = round.warmUp ? Math.min(COUNT, 20) : COUNT
    const bigSeed = `big-${round.index}`
    // The caller's own CPU in these steps, measured alone (the same code runs in every owner).
    const harnessBig = await calibrator.call<{ store: number; read: number }>({ op: 'harness', size: big, count: 1 })
    const harnessSmall = await calibrator.call<{ store: number; read: number }>({ op: 'harness', size: SMALL, count })
    // The digest to check reads against: what the dcas node reported (its child checks it against the data).
    let bigDigest = ''

    await step(
      round,
      systems,
      `store ${bigLabel}, 2 replicas`,
      'MB/s',
      async (s) => {
        const res = await s.owner.store('big', big, bigSeed)
        if (s.kind === 'dcas') {
          if (res.replicas?.length !== 2) throw new Error(`the store reached ${res.replicas?.length} replicas, not 2`)
          bigDigest = res.sha256!
        }
        return big / 1e6 / (res.ms / 1000)
      },
      { label: `store ${bigLabel}, 2 replicas, 3 processes`, bytes: big, harnessSeconds: harnessBig.store },
    )
    await step(round, systems, `read ${bigLabel} locally`, 'MB/s', async (s) => {
      const res = await s.owner.read('big')
      check(`${rowName(s.kind, 'local read')}`, res, big, bigDigest)
      return big / 1e6 / (res.ms / 1000)
    })
    // The owner's local copy is removed (untimed) while it runs; the read fetches from peers and heals.
    for (const s of systems) await rm(s.localBlobs, { recursive: true, force: true })
    await step(
      round,
      systems,
      `read ${bigLabel} after local loss (from peers, healed)`,
      'MB/s',
      async (s) => {
        const res = await s.owner.read('big')
        check(`${rowName(s.kind, 'read after loss')}`, res, big, bigDigest)
        return big / 1e6 / (res.ms / 1000)
      },
      { label: `read ${bigLabel} after local loss, 3 processes`, bytes: big, harnessSeconds: harnessBig.read },
    )
    await step(round, systems, `delete the ${bigLabel} object`, 'MB/s', async (s) => big / 1e6 / (await seconds(() => s.owner.delete('big'))))

    const keys = Array.from({ length: count }, (_, i) => `small-${round.index}-${i}`)
    const digests = await Promise.all(keys.map((k) => dataDigest(SMALL, k)))
    const small = (what: string): string => `${what} ${smallLabel} (${IN_FLIGHT} in flight)`
    await step(
      round,
      systems,
      small('store'),
      'ops/s',
      async (s) => count / (await seconds(() => pool(IN_FLIGHT, count, async (i) => void (await s.owner.store(keys[i]!, SMALL, keys[i]!))))),
      { label: `${small('store')}, 3 processes`, bytes: count * SMALL, harnessSeconds: harnessSmall.store },
    )
    await step(round, systems, small('read'), 'ops/s', async (s) =>
      count / (await seconds(() => pool(IN_FLIGHT, count, async (i) => check(`${rowName(s.kind, 'small read')}`, await s.owner.read(keys[i]!), SMALL, digests[i]!)))),
    )
    await step(round, systems, small('delete'), 'ops/s', async (s) => count / (await seconds(() => pool(IN_FLIGHT, count, async (i) => void (await s.owner.delete(keys[i]!))))))
  }

  const lifetime = await Promise.all(dcas.processes.map(async (p) => (await p.usage()).maxRss / MiB))
  emit({ name: 'server: lifetime peak RSS of each node (getrusage)', unit: 'MiB', value: Math.max(...lifetime), peakRssMiB: lifetime, processes: dcas.processNames })
} finally {
  await Promise.allSettled([...nodes.map((n) => n.close()), ...workers.map((w) => w.close())])
  await rm(dir, { recursive: true, force: true })
}
