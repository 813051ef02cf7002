import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { CLI_ERROR_CODES, CliError, EXIT_CODES, NotRunningError, QuorumError } from '../src/index.js'

describe('errors', () => {
  it('carry a stable code, name, hint and exit code, and keep their cause', () => {
    const cause = new Error('connect ECONNREFUSED')
    const err = new NotRunningError('the node is not running', { cause, hint: 'start it' })
    expect(err).toBeInstanceOf(CliError)
    expect(err).toMatchObject({ code: 'ERR_NOT_RUNNING', name: 'NotRunningError', hint: 'start it', exitCode: 4 })
    expect(err.cause).toBe(cause)
    expect(new QuorumError('short', { key: 'k', needed: 2, replicas: ['a'], failed: [] }).exitCode).toBe(6)
  })

  it('each have an exit code, and each is documented in the README with it', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
    for (const code of CLI_ERROR_CODES) {
      expect(EXIT_CODES[code], code).toBeGreaterThan(0)
      expect(readme, code).toContain(`| \`${code}\` | ${EXIT_CODES[code]} |`)
    }
  })
})
