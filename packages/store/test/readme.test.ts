import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const example = fileURLToPath(new URL('../examples/store.ts', import.meta.url))
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')

describe('README', () => {
  it('embeds the example file verbatim', () => {
    expect(readme).toContain('```ts\n' + readFileSync(example, 'utf8') + '```')
  })

  it('shows what the example really prints', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', example], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
    })
    expect(stdout).toMatch(/^stored 30 bytes as [0-9a-f]{16}…\nrange: content-addressed\ngreetings\/en -> [0-9a-f]{16}… \(refcount 1\)\nputExpected: ERR_INTEGRITY\nbefore commit: false\nafter commit: true\n$/)
    expect(readme).toContain('```text\n' + stdout + '```')
  })
})
