import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { CRYPTO_ERROR_CODES, CryptoError, FormatError } from '../src/index.js'

describe('errors', () => {
  it('carry a stable code and name, and keep their cause', () => {
    const cause = new Error('bad stanza')
    const err = new FormatError('malformed header line', { cause })
    expect(err).toBeInstanceOf(CryptoError)
    expect(err.code).toBe('ERR_FORMAT')
    expect(err.name).toBe('FormatError')
    expect(err.cause).toBe(cause)
  })

  it('are each documented in the README', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
    for (const code of CRYPTO_ERROR_CODES) expect(readme, code).toContain(`| \`${code}\` |`)
  })
})
