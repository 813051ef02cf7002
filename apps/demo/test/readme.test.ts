// The root README's library example must run as written.
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)
const demoDir = new URL('..', import.meta.url).pathname

describe('root README', () => {
  it('runs its library example and prints what the comment says', async () => {
    const readme = await readFile(new URL('../../../README.md', import.meta.url), 'utf8')
    const code = /```ts\n([\s\S]*?)```/.exec(readme)?.[1]
    expect(code).toBeDefined()
    // run it in a scratch directory inside this package, so '@dcas/server' resolves as for a user
    const dir = await mkdtemp(join(demoDir, '.readme-'))
    try {
      await writeFile(join(dir, 'example.ts'), code!)
      const { stdout } = await run(process.execPath, ['--import', 'tsx', join(dir, 'example.ts')], { cwd: dir })
      expect(stdout.trim()).toBe('big conten0 1')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
