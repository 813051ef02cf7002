import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { InvalidKeyError, SERVER_ERROR_CODES, ServerError } from '../src/index.js'

describe('errors', () => {
  it('carry a stable code and name, and keep their cause', () => {
    const cause = new Error('too long')
    const err = new InvalidKeyError('key is 1025 bytes', { cause })
    expect(err).toBeInstanceOf(ServerError)
    expect(err.code).toBe('ERR_INVALID_KEY')
    expect(err.name).toBe('InvalidKeyError')
    expect(err.cause).toBe(cause)
  })

  it('are each documented in the README', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
    for (const code of SERVER_ERROR_CODES) expect(readme, code).toContain(`| \`${code}\` |`)
  })
})
