#!/usr/bin/env node
// Builds the web console into dist/console: one bundled, minified script (Preact and the virtualizer
// inside), its stylesheet, page and icon. Nothing is fetched at run time: the node serves these files.
import { copyFile, mkdir, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const out = join(root, 'dist', 'console')
await rm(out, { recursive: true, force: true })
await mkdir(out, { recursive: true })
await build({
  entryPoints: { app: join(root, 'web', 'src', 'main.tsx') },
  outdir: out,
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['chrome111', 'firefox111', 'safari16.4'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  legalComments: 'none',
  logLevel: 'warning',
})
await build({ entryPoints: { app: join(root, 'web', 'app.css') }, outdir: out, bundle: true, minify: true, logLevel: 'warning' })
for (const file of ['index.html', 'icon.svg']) await copyFile(join(root, 'web', file), join(out, file))
