import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, beforeEach, expect, it } from 'vitest'
import { removeDir, tempDir } from './helpers.js'

let dir: string

beforeEach(async () => {
  dir = await tempDir()
})

afterEach(async () => {
  await removeDir(dir)
})

/** Runs the fixture with files limited to `blocks` × 512 bytes; resolves to its output and exit code. */
function runLimited(blocks: number, path: string): Promise<{ stdout: string; stderr: string; code: number | null }> {
  const fixture = fileURLToPath(new URL('./fixtures/index-full.ts', import.meta.url))
  const child = spawn('bash', ['-c', `ulimit -f ${blocks} && exec "$0" "$@"`, process.execPath, '--import', 'tsx', fixture, path], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (t: string) => (stdout += t))
  child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t))
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('exit', (code) => resolve({ stdout, stderr, code }))
  })
}

it('fails index commits that outgrow the disk with ERR_INDEX, keeps what was committed, and the process lives on', async () => {
  const { stdout, stderr, code } = await runLimited(256, join(dir, 'index'))
  expect(stdout.split('\n'), stderr).toEqual(['failed 0 ERR_INDEX', 'failed 1 ERR_INDEX', 'failed 2 ERR_INDEX', 'kept 1 none', ''])
  expect(code).toBe(0)
})
