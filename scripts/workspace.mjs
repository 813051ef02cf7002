#!/usr/bin/env node
// The root commands a new user runs: `npm run demo`, `npm test`, `npm run bench` (and `test:faults`, `test:s3-clients`).
// They need only Node 20+ and npm: pnpm is used when it is on the PATH, and
// otherwise run through `npx` at the version pinned in package.json, so nothing
// is installed globally. Dependencies are installed (frozen lockfile) when missing,
// and packages are built through turbo, which serves unchanged ones from cache.
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { RESULTS, summarize, testedPackages } from './test-summary.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const pnpmVersion = manifest.packageManager.replace(/^pnpm@/, '').split('+')[0]
const env = { ...process.env, TURBO_TELEMETRY_DISABLED: '1', DO_NOT_TRACK: '1' }

function run(cmd, args) {
  const res = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env })
  if (res.error) throw res.error
  return res.status ?? 1
}

/** pnpm from the PATH when its major matches the pinned one, else through npx. */
function pnpmCommand() {
  const probe = spawnSync('pnpm', ['--version'], { encoding: 'utf8', env })
  if (probe.status === 0 && probe.stdout.trim().split('.')[0] === pnpmVersion.split('.')[0]) return ['pnpm']
  return ['npx', '--yes', `pnpm@${pnpmVersion}`]
}

const pnpm = pnpmCommand()
const runPnpm = (...args) => run(pnpm[0], [...pnpm.slice(1), ...args])

function ensureInstalled() {
  const marker = join(root, 'node_modules', '.pnpm', 'lock.yaml')
  const lock = join(root, 'pnpm-lock.yaml')
  if (existsSync(marker) && statSync(marker).mtimeMs >= statSync(lock).mtimeMs) return
  if (runPnpm('install', '--frozen-lockfile') !== 0) {
    console.error('\nInstalling the dependencies failed (see above).')
    process.exit(1)
  }
}

const [task = 'test', ...rest] = process.argv.slice(2)
ensureInstalled()

if (task === 'test') {
  // Stale results must not count; turbo restores them from its cache for unchanged packages.
  for (const { dir } of testedPackages(root)) rmSync(join(dir, RESULTS), { force: true })
  // --continue: every package's tests run even when one fails, so the count covers them all.
  const status = runPnpm('exec', 'turbo', 'run', 'test', '--continue', ...rest)
  const { passed, failed, missing } = summarize(root)
  for (const name of missing) console.error(`no test results from ${name}: its test run did not complete`)
  console.log(`${passed} passed, ${failed + missing.length} failed`)
  process.exit(status !== 0 || failed > 0 || missing.length > 0 ? 1 : 0)
} else if (task === 'demo') {
  if (runPnpm('exec', 'turbo', 'run', 'build', '--filter=@dcas/demo...', '--output-logs=errors-only') !== 0) process.exit(1)
  process.exit(run(process.execPath, [join(root, 'apps/demo/dist/main.js'), ...rest]))
} else if (task === 'bench') {
  if (runPnpm('exec', 'turbo', 'run', 'build', '--output-logs=errors-only') !== 0) process.exit(1)
  process.exit(runPnpm('exec', 'tsx', join(root, 'bench/run.ts'), ...rest))
} else if (task === 'faults') {
  if (runPnpm('exec', 'turbo', 'run', 'build', '--output-logs=errors-only') !== 0) process.exit(1)
  process.exit(runPnpm('exec', 'tsx', join(root, 'faults/run.ts'), ...rest))
} else if (task === 's3-clients') {
  if (runPnpm('exec', 'turbo', 'run', 'build', '--filter=@dcas/cli...', '--filter=@dcas/s3...', '--output-logs=errors-only') !== 0) process.exit(1)
  process.exit(runPnpm('exec', 'tsx', join(root, 'packages/s3/scripts/clients.ts'), ...rest))
} else {
  console.error(`unknown task "${task}": use test, demo, bench, faults or s3-clients`)
  process.exit(2)
}
