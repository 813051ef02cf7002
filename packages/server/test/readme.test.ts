import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)
const example = new URL('../examples/three-nodes.ts', import.meta.url)
const placement = new URL('../examples/placement.ts', import.meta.url)

describe('README', () => {
  it('embeds the examples verbatim', async () => {
    const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8')
    expect(readme).toContain((await readFile(example, 'utf8')).trim())
    expect(readme).toContain((await readFile(placement, 'utf8')).trim())
  })

  it('runs the example: three nodes over TCP store, read and delete', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', example.pathname], { cwd: new URL('..', import.meta.url).pathname })
    expect(stdout.split('\n')).toEqual(['stored 11 bytes, acknowledged by 2 peers', 'read back: big conten0', 'deleted on 2 peers; still there: false', ''])
  })

  it('runs the placement example: two copies in distinct zones, repair after a loss, a join, a drain', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', placement.pathname], { cwd: new URL('..', import.meta.url).pathname })
    expect(stdout.split('\n')).toEqual([
      '20 objects, each on 2 peers in 2 zones: {"2":20}',
      'n3 lost, copies made again: {"2":20}',
      'n5 joined, placement settled: true',
      'n1 drained, its replicas moved: {"2":20}',
      '',
    ])
  })
})
