import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const packageDir = fileURLToPath(new URL('..', import.meta.url))
const example = fileURLToPath(new URL('../examples/memory.ts', import.meta.url))

describe('the in-memory transport example', () => {
  it('is embedded verbatim in the README', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
    expect(readme).toContain('```ts\n' + readFileSync(example, 'utf8') + '```')
  })

  it('runs and prints the exchange', { timeout: 30_000 }, async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', example], { cwd: packageDir })
    expect(stdout).toMatch(/^alice reached bob \(node id checked\) at bob:\d+\n/)
    expect(stdout).toContain('bob answered: HELLO, BOB\n')
    expect(stdout).toContain('mallory was refused: ERR_PEER_UNAUTHORIZED\n')
  })
})
