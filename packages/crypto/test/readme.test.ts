import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const example = fileURLToPath(new URL('../examples/age.ts', import.meta.url))
const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')

describe('README', () => {
  it('embeds the example file verbatim', () => {
    expect(readme).toContain('```ts\n' + readFileSync(example, 'utf8') + '```')
  })

  it('shows what the example really prints', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', example], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
    })
    expect(stdout).toBe(
      'identity file created: true, mode 600\nhello, age\nsame ciphertext: true\ndecrypted: a chunk stored once\n' +
        'other identity: ERR_NO_MATCHING_IDENTITY\n',
    )
    expect(readme).toContain('```text\n' + stdout + '```')
  })

  it('repeats the @example of the package documentation', () => {
    const index = readFileSync(new URL('../src/index.ts', import.meta.url), 'utf8')
    const block = /@example\n \* ```ts\n([\s\S]*?) \* ```/.exec(index)?.[1]
    expect(block).toBeDefined()
    const code = block!.replace(/^ \*( |$)/gm, '')
    expect(readme).toContain('```ts\n' + code + '```')
  })

  it('documents every export of the package', async () => {
    const api = await import('../src/index.js')
    for (const name of Object.keys(api)) expect(readme, name).toContain(`\`${name}`)
  })
})
