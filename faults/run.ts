// pnpm test:faults [--seed S] [--runs N] [--duration 30m] [--ops N] [--quick | --profile quick|full|seven] [--nodes 3] [--keep] [--verbose] [--no-adversarial | --adversarial-only]
//
// Real dcas nodes in child processes over TCP, a seeded random workload, and faults: kill -9 and
// restart on the same data directory, network faults through a TCP fault proxy, bit rot at rest,
// a full disk (tmpfs), partitions, local loss, and a hostile peer and unknown clients. After each
// run the invariants are checked against an independent record. The last line is the figures
// line; the exit code is non-zero if anything was lost, read corrupt or resurrected, or any other
// invariant broke. Every run is reproducible from the seed it prints.
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { adversarial } from './src/adversarial.js'
import { Chaos, type ChaosOptions } from './src/chaos.js'
import { Cluster } from './src/cluster.js'
import { RotTracker } from './src/disk.js'
import { Report } from './src/report.js'
import { Rng } from './src/rng.js'
import { rotRound } from './src/rot.js'
import { checkProxy } from './src/selfcheck.js'
import { verifyDisks, verifyDurable, verifyReads } from './src/verify.js'
import { Workload, type WorkloadOptions } from './src/workload.js'

const KiB = 1024
const MiB = 1024 * KiB

interface Args {
  seed: string
  runs: number | undefined
  durationMs: number | undefined
  ops: number | undefined
  profile: ProfileName
  nodes: number | undefined
  keep: boolean
  verbose: boolean
  adversarial: boolean
  /** Only the adversarial cases, in every run (no chaos cluster). */
  adversarialOnly: boolean
}

function usage(message: string): never {
  console.error(`${message}\nusage: pnpm test:faults [--seed S] [--runs N] [--duration 30m|90s] [--ops N] [--quick | --profile quick|full|seven] [--nodes 3] [--keep] [--verbose] [--no-adversarial | --adversarial-only]`)
  process.exit(2)
}

type ProfileName = 'quick' | 'full' | 'seven'

function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text)
  if (m === null) usage(`bad duration "${text}"`)
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h']
  return Number(m[1]) * unit
}

function parseArgs(argv: string[]): Args {
  const args: Args = { seed: randomBytes(6).toString('hex'), runs: undefined, durationMs: undefined, ops: undefined, profile: 'full', nodes: undefined, keep: false, verbose: false, adversarial: true, adversarialOnly: false }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    const value = (): string => argv[++i] ?? usage(`${a} needs a value`)
    const int = (): number => {
      const n = Number(value())
      if (!Number.isSafeInteger(n) || n < 1) usage(`${a} needs a positive integer`)
      return n
    }
    if (a === '--') continue
    else if (a === '--seed') args.seed = value()
    else if (a === '--runs') args.runs = int()
    else if (a === '--duration') args.durationMs = parseDuration(value())
    else if (a === '--ops') args.ops = int()
    else if (a === '--quick') args.profile = 'quick'
    else if (a === '--profile') {
      const name = value()
      if (name !== 'quick' && name !== 'full' && name !== 'seven') usage(`unknown profile "${name}" (quick, full or seven)`)
      args.profile = name
    } else if (a === '--nodes') args.nodes = Math.max(3, int())
    else if (a === '--keep') args.keep = true
    else if (a === '--verbose') args.verbose = true
    else if (a === '--no-adversarial') args.adversarial = false
    else if (a === '--adversarial-only') args.adversarialOnly = true
    else usage(`unknown option ${a}`)
  }
  if (!args.adversarial && args.adversarialOnly) usage('--no-adversarial and --adversarial-only exclude each other')
  return args
}

/** What a run does, by mode. */
interface Profile {
  epochs: number
  chaosMs: number
  workload: Omit<WorkloadOptions, 'canaries' | 'chunkSize'>
  chaos: ChaosOptions
  /** Chance per epoch of a node restarted after losing its blobs (or all but identity/). */
  lossChance: number
  /** Nodes (default 3; `--nodes` overrides). */
  nodes?: number
  /** Placement: peer copies per object, and how long a node may be unseen before it is lost. */
  placement?: { replicas: number; lostAfter: number }
  /**
   * Membership changes between epochs: after epoch `lose` (1-based), the last node (which owns no keys, it only holds
   * replicas) is destroyed for good; after epoch `add`, a new node joins.
   */
  membership?: { lose: number; add: number }
}

const profiles: Record<ProfileName, Profile> = {
  quick: {
    epochs: 2,
    chaosMs: 25_000,
    workload: { lanesPerNode: 1, keysPerLane: 6, maxSize: 20 * MiB, opTimeoutMs: 180_000 },
    chaos: { meanGapMs: 1_200, maxStallMs: 5_000, maxPartitionMs: 6_000, maxDownMs: 2_500, maxDiskFullMs: 5_000 },
    lossChance: 0.5,
  },
  full: {
    epochs: 4,
    chaosMs: 60_000,
    workload: { lanesPerNode: 2, keysPerLane: 8, maxSize: 64 * MiB, opTimeoutMs: 300_000 },
    chaos: { meanGapMs: 1_800, maxStallMs: 40_000, maxPartitionMs: 15_000, maxDownMs: 6_000, maxDiskFullMs: 12_000 },
    lossChance: 0.4,
  },
  // Seven nodes with two copies per object: partitions and kills shorter than lostAfter (no copy moves for them),
  // a node lost for good after the second epoch and one added after the third.
  seven: {
    epochs: 4,
    chaosMs: 60_000,
    workload: { lanesPerNode: 1, keysPerLane: 8, maxSize: 32 * MiB, opTimeoutMs: 300_000 },
    chaos: { meanGapMs: 2_000, maxStallMs: 20_000, maxPartitionMs: 12_000, maxDownMs: 5_000, maxDiskFullMs: 10_000 },
    lossChance: 0.3,
    nodes: 7,
    placement: { replicas: 2, lostAfter: 60_000 },
    membership: { lose: 2, add: 3 },
  },
}

const args = parseArgs(process.argv.slice(2))
const report = new Report({ verbose: args.verbose })
const profile = profiles[args.profile]
const nodes = args.nodes ?? profile.nodes ?? 3
const live = new Set<Cluster>()
let currentDir: string | undefined

function reproduce(seed: string): string {
  return `pnpm test:faults --seed ${seed} --runs 1${args.profile === 'full' ? '' : ` --profile ${args.profile}`}${args.nodes === undefined ? '' : ` --nodes ${args.nodes}`}${args.adversarialOnly ? ' --adversarial-only' : ''}`
}

process.on('unhandledRejection', (err) => {
  report.violation('runner', `unhandled rejection in the runner: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
})
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping (seed ${report.seed || args.seed}); data kept in ${currentDir ?? '(none)'}`)
    void Promise.allSettled([...live].map((c) => c.abort())).finally(() => process.exit(130))
  })
}

/** Fails (as a finding) when `p` takes longer than `ms`. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took over ${ms / 1000} s`)), ms)))])
  } finally {
    clearTimeout(timer)
  }
}

async function runOnce(seed: string, index: number, withAdversarial: boolean): Promise<boolean> {
  const violationsBefore = report.violations.length
  report.seed = seed
  const rng = new Rng(seed)
  const dir = await mkdtemp(join(tmpdir(), 'dcas-faults-'))
  currentDir = dir
  report.logTo(join(dir, 'runner.log'))
  const chunkSize = rng.pick([64 * KiB, 256 * KiB, 1 * MiB])
  // 1 (the default) most of the time; 'all' fails at once while a placed holder is down, so it sees fewer stores through.
  const writeQuorum = rng.pick<'all' | number>([1, 1, 'all'])
  // One canary per node, and one for a node added later.
  const canaries = Array.from({ length: nodes + 1 }, (_, i) => `CANARY${rng.hex(8)}N${i}Z`)
  const tmpfsNode = rng.int(0, nodes - 1)
  const replicaRotNode = rng.int(0, nodes - 1)
  report.say(`run ${index + 1}: seed ${seed} (chunks ${chunkSize / KiB} KiB, write quorum ${writeQuorum}, disk-full node n${tmpfsNode}, replica rot on n${replicaRotNode}) in ${dir}`)
  const cluster = new Cluster(
    {
      dir,
      nodes,
      secret: `faults-${seed}`,
      ...(profile.placement === undefined ? {} : profile.placement),
      chunkSize,
      writeQuorum,
      requestTimeout: 5_000,
      canaries: canaries.map((c) => Buffer.from(c)),
      tmpfs: { node: tmpfsNode, bytes: 2048 * MiB },
      logLevel: 'warn',
    },
    report,
  )
  live.add(cluster)
  const started = Date.now()
  let ok = false
  try {
    if (args.adversarialOnly) {
      report.log('no chaos cluster (--adversarial-only)')
      live.delete(cluster)
    } else {
      await cluster.start()
      // Each owner's keys and texts carry its own canary.
      // With membership changes, the last node owns nothing: it is the one destroyed for good.
      const owners = profile.membership === undefined ? nodes : nodes - 1
      const workload = new Workload(cluster, rng.fork('workload'), report, { ...profile.workload, chunkSize, canaries, owners })
      const replicas = profile.placement?.replicas
      // A copy moved (a node unseen for longer than lostAfter) may release acknowledged ones: those no longer bind.
      if (replicas !== undefined) cluster.onNodeLost = () => workload.forgetHolderAcks()
      const rot = new RotTracker()
      const chaos = new Chaos(cluster, workload, rng.fork('chaos'), report, profile.chaos, (node) => verifyDurable(cluster, workload, node, rot, report))
      const rotRng = rng.fork('rot')
      const lossRng = rng.fork('loss')

      const quiesce = async (phase: string): Promise<void> => {
        await within(cluster.waitConnected(120_000), 130_000, `${phase}: reconnecting every node`)
        await within(cluster.waitSynced(), 300_000, `${phase}: catch-up`)
        if (replicas !== undefined) {
          try {
            await within(cluster.waitPlaced(300_000), 310_000, `${phase}: placement settling`)
          } catch (err) {
            // What each node still has to do, for the post-mortem.
            for (const s of cluster.live) report.say(`${phase}: ${s.name} placement ${JSON.stringify(await s.handle?.placementStatus().catch((e: unknown) => String(e)))}`)
            throw err
          }
        }
      }
      for (let epoch = 0; epoch < profile.epochs; epoch++) {
        if (args.ops !== undefined && report.ops >= args.ops) break
        report.log(`epoch ${epoch + 1}: chaos for ${profile.chaosMs / 1000} s`)
        workload.start()
        await chaos.run(profile.chaosMs)
        const stopped = workload.stop()
        await chaos.settle()
        await stopped
        await quiesce(`epoch ${epoch + 1}`)
        await verifyReads(cluster, workload, report, `epoch ${epoch + 1}`)
        if (lossRng.chance(profile.lossChance)) {
          const node = lossRng.int(0, owners - 1)
          const loss = lossRng.chance(0.6) ? 'blobs' : 'all-but-identity'
          report.log(`local loss: n${node} restarts without ${loss === 'blobs' ? 'its blobs' : 'anything but identity/'}`)
          report.kills++
          report.extra.localLosses++
          await cluster.kill(node)
          await verifyDurable(cluster, workload, node, rot, report)
          cluster.slot(node).lossClock = workload.clock
          if (loss === 'all-but-identity') workload.forgetUnsharedVersions(node)
          await cluster.restart(node, loss)
          await quiesce(`epoch ${epoch + 1} after local loss`)
          await verifyReads(cluster, workload, report, `epoch ${epoch + 1} after local loss on n${node}`)
        }
        await rotRound(cluster, rotRng, rot, report, replicaRotNode)
        if (profile.membership?.lose === epoch + 1) {
          const victim = cluster.slot(nodes - 1)
          report.log(`membership: ${victim.name} is destroyed for good`)
          const lost = Promise.all(
            cluster.live
              .filter((s) => s !== victim)
              .map(
                (s) =>
                  new Promise<void>((resolve) => {
                    const seen = (e: { nodeId: string }): void => {
                      if (e.nodeId !== victim.nodeId) return
                      s.handle?.events.off('node:lost', seen)
                      resolve()
                    }
                    s.handle?.events.on('node:lost', seen)
                  }),
              ),
          )
          await cluster.loseForGood(victim.index)
          await within(lost, profile.placement!.lostAfter + 120_000, `membership: every node declaring ${victim.name} lost`)
          workload.forgetHolderAcks()
          await quiesce(`epoch ${epoch + 1} after ${victim.name} was lost`)
          await verifyReads(cluster, workload, report, `epoch ${epoch + 1} after ${victim.name} was lost for good`)
        }
        if (profile.membership?.add === epoch + 1) {
          const added = await cluster.addNode()
          report.log(`membership: ${added.name} joins`)
          workload.forgetHolderAcks()
          await quiesce(`epoch ${epoch + 1} after ${added.name} joined`)
          await verifyReads(cluster, workload, report, `epoch ${epoch + 1} after ${added.name} joined`)
        }
      }
      await quiesce('final')
      await verifyReads(cluster, workload, report, 'final')
      await quiesce('final, after healing reads')
      await verifyDisks(cluster, rot, canaries.map((c) => Buffer.from(c)), report, 'final', replicas)
      for (const l of cluster.links) report.netfaults += l.proxy.stats.faults
      await cluster.close(report.violations.length > violationsBefore)
      live.delete(cluster)
    }
    if (withAdversarial) {
      report.log('adversarial cases')
      await adversarial(join(dir, 'adversarial'), `faults-adv-${seed}`, rng.fork('adversarial'), report, canaries[0]!)
    }
    ok = report.violations.length === violationsBefore
  } catch (err) {
    report.violation('runner', `run aborted: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
  } finally {
    if (live.has(cluster)) {
      for (const l of cluster.links) report.netfaults += l.proxy.stats.faults
      await cluster.abort()
      live.delete(cluster)
    }
  }
  report.runs++
  const secs = Math.round((Date.now() - started) / 1000)
  if (ok) {
    report.say(`run ${index + 1} passed in ${secs} s`)
    if (!args.keep) await rm(dir, { recursive: true, force: true })
  } else {
    report.say(`run ${index + 1} FAILED in ${secs} s: seed ${seed}; data and logs kept in ${dir}`)
    report.say(`reproduce with: ${reproduce(seed)}`)
  }
  return ok
}

async function main(): Promise<void> {
  const started = Date.now()
  console.log(`faults: seed ${args.seed} (${args.profile} profile, ${nodes} nodes${profile.placement === undefined ? '' : `, ${profile.placement.replicas} copies per object`}); reproduce with: ${args.runs === 1 || args.runs === undefined ? reproduce(args.seed) : `${reproduce(args.seed).replace(' --runs 1', '')} --runs ${args.runs}`}`)
  await checkProxy()
  console.log('fault proxy self-check passed (forward, flip, truncate, reset, cut, canary scan)')
  const runs = args.runs ?? (args.durationMs === undefined && args.ops === undefined ? 1 : Infinity)
  for (let i = 0; i < runs; i++) {
    if (args.durationMs !== undefined && Date.now() - started >= args.durationMs) break
    if (args.ops !== undefined && report.ops >= args.ops) break
    const seed = i === 0 ? args.seed : `${args.seed}.${i}`
    // The adversarial cases run in the first run, then in every third (in every one with --adversarial-only).
    await runOnce(seed, i, args.adversarial && (args.adversarialOnly || i % 3 === 0))
  }
  const minutes = ((Date.now() - started) / 60_000).toFixed(1)
  const e = report.extra
  console.log(
    `details: ${minutes} min; ${e.stores} stores, ${e.reads} reads, ${e.deletes} deletes (${e.failedOps} stores/deletes and ${e.failedReads} reads failed under faults, as allowed); ` +
      `${e.diskFull} disk-full spells, ${e.localLosses} local losses, ${e.healed} chunks healed, ${e.rottenLeft} rotten replicas never read; ` +
      `${e.hostileCases} hostile-peer cases, ${e.unknownClients} unknown clients; failures by code: ${[...report.errorCodes].map(([c, n]) => `${c} ${n}`).join(', ') || 'none'}`,
  )
  if (report.violations.length > 0) {
    console.log(`${report.violations.length} violation(s):`)
    for (const v of report.violations.slice(0, 50)) console.log(`  [${v.kind}] seed ${v.seed}: ${v.detail}`)
  }
  console.log(report.figures())
  process.exit(report.violations.length > 0 ? 1 : 0)
}

await main()
