// `node --import tsx bench/profile.ts STEP [--mib N] [--count N] [--top N] [--keep DIR]`
//
// Where the time goes in one step of the end-to-end suite: starts the three nodes of
// suites/server.ts (B dials A, C dials A and B; C owns the data) with `--cpu-prof`, runs what
// the step needs first, then the step itself, and prints for each node the functions with the
// most self time during that step only (the samples outside its window are left out), and
// the same grouped into what they are (SHA-256, ChaCha20, socket writes with TLS, fs, GC…).
//
// STEP: store | read | loss (read after local loss) | delete | small (store of 64 KiB objects)
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnNode, type NodeHandle } from '@dcas/server/testing'
import { argValue, MiB } from './lib.js'

const steps = ['store', 'read', 'loss', 'delete', 'small'] as const
type Step = (typeof steps)[number]
const step = process.argv[2] as Step
if (!steps.includes(step)) throw new Error(`usage: bench/profile.ts ${steps.join('|')} [--mib N] [--count N] [--top N] [--keep DIR]`)
const bytes = Number(argValue('--mib') ?? 256) * MiB
const count = Number(argValue('--count') ?? 300)
const top = Number(argValue('--top') ?? 12)
const keep = argValue('--keep')

/** The subset of a V8 `.cpuprofile` this reads. */
interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }>
  startTime: number
  samples: number[]
  timeDeltas: number[]
}

/** What a sampled function is, by its name and file (and its caller's file, for native calls): the groups of the first table. */
function groupOf(name: string, url: string, callerUrl: string): string {
  const native = url === ''
  const where = native ? callerUrl : url
  if (name === '(idle)') return 'idle (waiting on disk, peers, locks)'
  if (name === '(garbage collector)') return 'garbage collection'
  if (name === '(program)') return 'V8 and libuv (program)'
  if (where.includes('crypto/hkdf') || where.includes('crypto/diffiehellman') || where.includes('crypto/keys')) return 'age header (X25519, HKDF)'
  if (where.includes('crypto/hash')) return 'SHA-256 and HMAC'
  if (where.includes('crypto/cipher')) return 'ChaCha20-Poly1305 (and AES-CTR test data)'
  if (where.includes('stream_base_commons') || where === 'node:net' || where.includes('_tls_')) return 'socket writes (TLS records, loopback TCP)'
  if (where.startsWith('node:internal/fs') || where === 'node:fs') return 'fs calls (open, write, fsync, rename…)'
  if (where.includes('lmdb')) return 'LMDB index'
  if (where.includes('p2p/dist/muxer')) return 'p2p multiplexer'
  if (where === 'node:buffer' || where === 'node:internal/buffer') return 'buffer copies and allocation'
  if (where.includes('modules') || where.includes('bootstrap')) return 'module loading'
  return 'other JavaScript'
}

function summarize(profile: CpuProfile, from: number, to: number): { total: number; byFunction: Map<string, number>; byGroup: Map<string, number> } {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]))
  const callerOf = new Map<number, number>()
  for (const n of profile.nodes) for (const child of n.children ?? []) callerOf.set(child, n.id)
  const byFunction = new Map<string, number>()
  const byGroup = new Map<string, number>()
  let total = 0
  let t = profile.startTime
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0
    t += dt
    if (t < from || t > to) return
    const { functionName, url, lineNumber } = nodes.get(id)!.callFrame
    const callerUrl = nodes.get(callerOf.get(id) ?? -1)?.callFrame.url ?? ''
    const name = functionName || '(anonymous)'
    const where = url.replace(/^file:\/\/.*\/(packages|node_modules)\//, '$1/')
    const key = where === '' ? `${name} (native, from ${callerUrl.replace(/^file:\/\/.*\/(packages|node_modules)\//, '$1/') || '-'})` : `${name}  ${where}:${lineNumber + 1}`
    byFunction.set(key, (byFunction.get(key) ?? 0) + dt)
    const group = groupOf(name, url.replace(/^file:\/\//, ''), callerUrl.replace(/^file:\/\//, ''))
    byGroup.set(group, (byGroup.get(group) ?? 0) + dt)
    total += dt
  })
  return { total, byFunction, byGroup }
}

function table(title: string, entries: Map<string, number>, total: number, limit: number): void {
  console.log(title)
  for (const [key, us] of [...entries].sort((a, b) => b[1] - a[1]).slice(0, limit)) {
    console.log(`  ${(us / 1000).toFixed(0).padStart(7)} ms  ${((100 * us) / total).toFixed(1).padStart(5)} %  ${key}`)
  }
}

const dir = await mkdtemp(join(tmpdir(), 'dcas-profile-'))
const profiles = keep ?? join(dir, 'profiles')
const nodes: NodeHandle[] = []
try {
  const start = async (name: string, bootstrap: NodeHandle[]): Promise<NodeHandle> => {
    const node = await spawnNode({ root: join(dir, name), clusterSecret: 'profile', bootstrap: bootstrap.map((n) => n.address), writeQuorum: 'all' }, { execArgv: ['--cpu-prof', '--cpu-prof-dir', profiles] })
    nodes.push(node)
    return node
  }
  const a = await start('a', [])
  const b = await start('b', [a])
  const c = await start('c', [a, b])
  await Promise.all([a, b, c].map((n) => n.waitForPeers(2)))
  await Promise.all([a, b, c].map((n) => n.waitForSync()))

  // What the step needs, outside the window.
  if (step !== 'store' && step !== 'small') await c.store('big', bytes, 'profile')
  if (step === 'loss') await rm(join(dir, 'c', 'blobs'), { recursive: true, force: true })

  // V8's profile clock and process.hrtime are both the monotonic clock, in µs here.
  const from = Number(process.hrtime.bigint() / 1000n)
  const began = performance.now()
  let what: string
  if (step === 'store') what = `store of ${bytes / MiB} MiB`
  else if (step === 'read' || step === 'loss') what = `read of ${bytes / MiB} MiB${step === 'loss' ? ' after local loss' : ''}`
  else if (step === 'delete') what = `delete of a ${bytes / MiB} MiB object`
  else what = `store of ${count} × 64 KiB, 8 in flight`
  if (step === 'store') await c.store('big', bytes, 'profile')
  else if (step === 'read' || step === 'loss') await c.read('big')
  else if (step === 'delete') await c.delete('big')
  else {
    let next = 0
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < count) {
        const i = next++
        await c.store(`small-${i}`, 64 * 1024, i)
      }
    }))
  }
  const seconds = (performance.now() - began) / 1000
  const to = Number(process.hrtime.bigint() / 1000n)
  const pids = new Map([[c.pid, 'node C (owner)'], [a.pid, 'node A (peer)'], [b.pid, 'node B (peer)']])
  await Promise.all(nodes.map((n) => n.close()))
  nodes.length = 0

  console.log(`${what}: ${seconds.toFixed(2)} s${step === 'small' ? ` (${(count / seconds).toFixed(1)} ops/s)` : step === 'delete' ? '' : ` (${(bytes / 1e6 / seconds).toFixed(1)} MB/s)`}`)
  for (const file of (await readdir(profiles)).filter((f) => f.endsWith('.cpuprofile')).sort()) {
    const label = pids.get(Number(file.split('.')[3]))
    if (label === undefined) continue
    const profile = JSON.parse(await readFile(join(profiles, file), 'utf8')) as CpuProfile
    const { total, byFunction, byGroup } = summarize(profile, from, to)
    console.log(`\n== ${label}: ${(total / 1e6).toFixed(2)} s sampled in the window`)
    table('by kind of work:', byGroup, total, 20)
    table(`top ${top} functions by self time:`, byFunction, total, top)
  }
} finally {
  await Promise.allSettled(nodes.map((n) => n.kill()))
  await rm(dir, { recursive: true, force: true })
}
