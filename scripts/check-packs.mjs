#!/usr/bin/env node
// Packs every public package as npm would publish it and checks the tarballs:
// dist/index.js and dist/index.d.ts present, no tests inside, no `workspace:` range left;
// then installs them all into an empty project, imports each, at run time and in types, and runs
// the installed `dcas` command.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const work = mkdtempSync(join(tmpdir(), 'dcas-packs-'))
// Each package's base error class: its `code` type must resolve to a real union, not `any`.
const baseError = { '@dcas/p2p': 'P2PError', '@dcas/store': 'StoreError', '@dcas/crypto': 'CryptoError', '@dcas/server': 'ServerError', '@dcas/cli': 'CliError', '@dcas/s3': 'S3Error' }
const problems = []
const tarballs = {}

try {
  for (const dir of readdirSync(join(root, 'packages'))) {
    const pkgDir = join(root, 'packages', dir)
    const manifest = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'))
    if (manifest.private) continue
    const out = execFileSync('pnpm', ['pack', '--pack-destination', work], { cwd: pkgDir, encoding: 'utf8' })
    const tarball = join(work, out.trim().split('\n').pop().split('/').pop())
    tarballs[manifest.name] = tarball
    const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n').filter(Boolean)
    for (const needed of ['package/dist/index.js', 'package/dist/index.d.ts']) {
      if (!files.includes(needed)) problems.push(`${manifest.name}: tarball lacks ${needed.slice('package/'.length)}`)
    }
    for (const f of files) {
      if (/(^|\/)(test|tests|__tests__)\//.test(f.slice('package/'.length)) || /\.(test|spec)\.[cm]?[jt]sx?$/.test(f)) {
        problems.push(`${manifest.name}: tarball contains a test: ${f}`)
      }
    }
    const packed = execFileSync('tar', ['-xzOf', tarball, 'package/package.json'], { encoding: 'utf8' })
    if (packed.includes('workspace:')) problems.push(`${manifest.name}: packed package.json still has a workspace: range`)
    if (!(manifest.name in baseError)) problems.push(`${manifest.name}: add its base error class to scripts/check-packs.mjs`)
  }

  if (problems.length === 0) {
    const app = join(work, 'app')
    execFileSync('mkdir', ['-p', app])
    const deps = Object.fromEntries(Object.entries(tarballs).map(([name, file]) => [name, `file:${file}`]))
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module', dependencies: deps, overrides: deps }, null, 2))
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', '@types/node@20'], { cwd: app, stdio: 'inherit' })
    const names = Object.keys(tarballs)
    const runtime = names.map((n, i) => `import * as m${i} from '${n}'\nif (typeof m${i}.${baseError[n]} !== 'function') throw new Error('${n}: ${baseError[n]} missing at run time')`).join('\n')
    writeFileSync(join(app, 'check.mjs'), `${runtime}\nconsole.log('imported at run time: ${names.join(', ')}')\n`)
    const types = names
      .map((n, i) => `import { ${baseError[n]} as E${i} } from '${n}'\n// @ts-expect-error: a code outside the union must not type-check\nexport const bad${i}: E${i}['code'] = 'ERR_NOT_A_CODE'`)
      .join('\n')
    writeFileSync(join(app, 'check.ts'), `${types}\n`)
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2023', strict: true, noEmit: true, skipLibCheck: true, types: ['node'] }, files: ['check.ts'] }),
    )
    execFileSync(process.execPath, ['check.mjs'], { cwd: app, stdio: 'inherit' })
    // The command as npm installs it: its launcher starts Node.js with the flags of a dcas process.
    const version = execFileSync(join(app, 'node_modules/.bin/dcas'), ['--version'], { cwd: app, encoding: 'utf8' }).trim()
    if (version !== JSON.parse(readFileSync(join(root, 'packages/cli/package.json'), 'utf8')).version) problems.push(`@dcas/cli: the installed dcas command printed "${version}" for --version`)
    else console.log(`the installed dcas command runs: ${version}`)
    execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: app, stdio: 'inherit' })
    console.log(`types resolved: ${names.join(', ')}`)
  }
} catch (err) {
  problems.push(`installing or importing the packed packages failed: ${err.message}`)
} finally {
  rmSync(work, { recursive: true, force: true })
}

if (problems.length > 0) {
  for (const p of problems) console.error(`pack check: ${p}`)
  process.exit(1)
}
console.log(`pack check: ${Object.keys(tarballs).length} packages packed, installed and imported`)
