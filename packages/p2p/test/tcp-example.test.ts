import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const example = fileURLToPath(new URL('../examples/tcp.ts', import.meta.url))
const packageDir = fileURLToPath(new URL('..', import.meta.url))

describe('the TCP example', () => {
  it('is embedded verbatim in the README', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
    expect(readme).toContain(`\`\`\`ts\n${readFileSync(example, 'utf8')}\`\`\``)
  })

  it('runs: bob answers alice over TLS with the shared secret', { timeout: 30_000 }, async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', example], { cwd: packageDir })
    expect(stdout).toBe('bob answered: HELLO, BOB\n')
  })
})
