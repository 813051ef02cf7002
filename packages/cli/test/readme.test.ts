import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)
const example = new URL('../examples/two-nodes.ts', import.meta.url)

describe('README', () => {
  it('embeds the example verbatim', async () => {
    const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8')
    expect(readme).toContain((await readFile(example, 'utf8')).trim())
  })

  it('runs the example: two nodes, a put replicated to the peer, get, ls, status, rm', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', example.pathname], { cwd: new URL('..', import.meta.url).pathname })
    expect(stdout.split('\n')).toEqual([
      'stored 11 bytes on A, acknowledged by 1 peer',
      'read back: hello, dcas',
      'listed: notes/hello.txt (11 bytes)',
      'A sees 1 connected peer; 1 of 1 objects with all their copies',
      'placement: 1 copy per object, settled: true',
      'deleted on 1 peer; 0 objects left',
      '',
    ])
  })
})
