// Anchors: a well-known tool doing comparable work on the same bytes, in the same run, so that
// dcas's figures can be read against more than its own ceilings. restic (Debian: `apt-get
// install -y restic`) backs up the 256 MiB object of the end-to-end suite (the same generated
// bytes) to a local repository — one local copy, encrypted, deduplicated, compressed where it
// pays — and restores it. MB/s is the object's size over the command's wall time; CPU s/GB is
// the command's user + system time (its shell's `cutime` + `cstime` once it has exited) per GB.
// Without restic on the PATH the suite says so and records nothing.
import { spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { dataDigest, generateData } from '@dcas/server/testing'
import { bytesLabel, MiB, record, rounds, size } from '../lib.js'

const BIG = size(256 * MiB, 8 * MiB)
const label = bytesLabel(BIG)
const PASSWORD = 'dcas bench anchor'

const probe = spawnSync('restic', ['version'], { encoding: 'utf8' })
if (probe.status !== 0) {
  console.log('anchors: restic is not on the PATH (Debian: apt-get update && apt-get install -y restic); no anchor figures')
  process.exit(0)
}
const version = /restic ([0-9.]+)/.exec(probe.stdout)?.[1] ?? 'unknown'

/**
 * Runs `restic args…` to its end and returns its wall time and CPU time in seconds. The CPU
 * time is read by a shell that waited for restic (its children's times), so none is missed.
 */
async function restic(args: string[], env: NodeJS.ProcessEnv): Promise<{ seconds: number; cpuSeconds: number }> {
  const started = performance.now()
  const child = spawn('sh', ['-c', 'restic "$@" >/dev/null && cat /proc/$$/stat', 'sh', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text))
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text))
  const status = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', resolve)
  })
  const seconds = (performance.now() - started) / 1000
  if (status !== 0) throw new Error(`restic ${args[0]} failed (${status}): ${stderr.trim()}`)
  // cutime and cstime: the 14th and 15th fields after the command name, in clock ticks (USER_HZ, 100).
  const fields = stdout.slice(stdout.lastIndexOf(')') + 2).split(' ')
  return { seconds, cpuSeconds: (Number(fields[13]) + Number(fields[14])) / 100 }
}

async function fileDigest(path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const piece of createReadStream(path)) hash.update(piece as Buffer)
  return hash.digest('hex')
}

const dir = await mkdtemp(join(tmpdir(), 'dcas-bench-anchors-'))
try {
  for (const round of rounds()) {
    const bytes = round.warmUp ? Math.min(BIG, 8 * MiB) : BIG
    const seed = `big-${round.index}`
    // The object of the end-to-end suite, as a file (written untimed).
    const data = join(dir, 'data')
    await mkdir(data, { recursive: true })
    const file = join(data, 'object')
    const handle = await open(file, 'w')
    for await (const piece of generateData(bytes, seed)) await handle.write(piece)
    await handle.close()
    const env = { RESTIC_REPOSITORY: join(dir, `repo-${round.index}`), RESTIC_PASSWORD: PASSWORD, RESTIC_CACHE_DIR: join(dir, 'cache') }
    await restic(['init'], env)

    const backup = await restic(['backup', '--quiet', file], env)
    const target = join(dir, `restore-${round.index}`)
    const restore = await restic(['restore', 'latest', '--target', target], env)
    // restic restores under the full path of what it backed up.
    const restored = await fileDigest(join(target, file))
    if (restored !== (await dataDigest(bytes, seed))) throw new Error('restic restored other bytes than it backed up')

    const name = (what: string): string => `anchor: restic ${version}, ${what} ${label} (one local copy, encrypted, deduplicated)`
    const mbs = (seconds: number): number => bytes / 1e6 / seconds
    const perGB = (cpuSeconds: number): number => cpuSeconds / (bytes / 1e9)
    record(round, { name: name('backup'), unit: 'MB/s', value: mbs(backup.seconds), peakRssMiB: [], isCeiling: true })
    record(round, { name: name('CPU per GB, backup'), unit: 'CPU s/GB', value: perGB(backup.cpuSeconds), peakRssMiB: [], isCeiling: true })
    record(round, { name: name('restore'), unit: 'MB/s', value: mbs(restore.seconds), peakRssMiB: [], isCeiling: true })
    record(round, { name: name('CPU per GB, restore'), unit: 'CPU s/GB', value: perGB(restore.cpuSeconds), peakRssMiB: [], isCeiling: true })
    await rm(env.RESTIC_REPOSITORY, { recursive: true, force: true })
    await rm(target, { recursive: true, force: true })
  }
} finally {
  await rm(dir, { recursive: true, force: true })
}
