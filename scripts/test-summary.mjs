// Sums vitest's JSON results over the workspace, so one line tells how many tests ran.
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

/** Where vitest writes each package's JSON results (see the packages' `test` scripts). */
export const RESULTS = join('.vitest', 'results.json')

/** Workspace packages (`packages/*`, `apps/*`) that have a `test` script: `{ name, dir }`. */
export function testedPackages(root) {
  const found = []
  for (const group of ['packages', 'apps']) {
    const base = join(root, group)
    if (!existsSync(base)) continue
    for (const entry of readdirSync(base, { withFileTypes: true })) {
      const file = join(base, entry.name, 'package.json')
      if (!entry.isDirectory() || !existsSync(file)) continue
      const manifest = JSON.parse(readFileSync(file, 'utf8'))
      if (manifest.scripts?.test) found.push({ name: manifest.name, dir: join(base, entry.name) })
    }
  }
  return found
}

/** `{ passed, failed, missing }` over every tested package; `missing` names packages without results. */
export function summarize(root) {
  let passed = 0
  let failed = 0
  const missing = []
  for (const { name, dir } of testedPackages(root)) {
    const file = join(dir, RESULTS)
    if (!existsSync(file)) {
      missing.push(name)
      continue
    }
    const results = JSON.parse(readFileSync(file, 'utf8'))
    passed += results.numPassedTests ?? 0
    failed += results.numFailedTests ?? 0
    // A file that fails to load (syntax error, failing hook) counts no test but is a failure.
    failed += (results.testResults ?? []).filter((f) => f.status === 'failed' && (f.assertionResults ?? []).every((a) => a.status !== 'failed')).length
  }
  return { passed, failed, missing }
}
