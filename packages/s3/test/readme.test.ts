import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { S3_ERROR_CODES, S3Error } from '../src/index.js'

const run = promisify(execFile)
const example = new URL('../examples/gateway.ts', import.meta.url)
const readme = (): Promise<string> => readFile(new URL('../README.md', import.meta.url), 'utf8')

describe('README', () => {
  it('embeds the example verbatim', async () => {
    expect(await readme()).toContain((await readFile(example, 'utf8')).trim())
  })

  it('runs the example: the AWS SDK through the gateway, and what it prints', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', example.pathname], { cwd: new URL('..', import.meta.url).pathname })
    const printed = /It prints:\n\n```\n([\s\S]*?)```/.exec(await readme())![1]!
    expect(stdout).toBe(printed)
  })

  it('documents every error code', async () => {
    const text = await readme()
    for (const code of S3_ERROR_CODES) expect(text, code).toContain(`| \`${code}\` |`)
  })

  it('gives errors a stable code, a status, a name and their cause', () => {
    const cause = new Error('disk')
    const err = new S3Error('NoSuchKey', 'gone', { cause })
    expect([err.code, err.status, err.name, err.cause]).toEqual(['NoSuchKey', 404, 'S3Error', cause])
  })
})
