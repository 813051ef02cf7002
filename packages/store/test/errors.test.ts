import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { IntegrityError, NotFoundError, STORE_ERROR_CODES, StoreError } from '../src/index.js'

describe('errors', () => {
  it('carry a stable code and name, and keep their cause', () => {
    const cause = new Error('sha256 mismatch')
    const err = new IntegrityError('blob does not match its id', { cause })
    expect(err).toBeInstanceOf(StoreError)
    expect(err.code).toBe('ERR_INTEGRITY')
    expect(err.name).toBe('IntegrityError')
    expect(err.cause).toBe(cause)
    expect(new NotFoundError('no such blob').code).toBe('ERR_NOT_FOUND')
  })

  it('are each documented in the README', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
    for (const code of STORE_ERROR_CODES) expect(readme, code).toContain(`| \`${code}\` |`)
  })
})
