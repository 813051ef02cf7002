import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  AbortedError,
  ClosedError,
  DiskFullError,
  IndexError,
  IntegrityError,
  InvalidArgumentError,
  InvalidIdError,
  InvalidKeyError,
  InvalidPathError,
  InvalidRangeError,
  IoError,
  NotFoundError,
  STORE_ERROR_CODES,
  StoreError,
} from '../src/index.js'

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

  it('have one class per code, each named after itself', () => {
    const classes = [
      NotFoundError,
      IntegrityError,
      InvalidIdError,
      InvalidPathError,
      InvalidRangeError,
      DiskFullError,
      IoError,
      ClosedError,
      IndexError,
      AbortedError,
      InvalidArgumentError,
      InvalidKeyError,
    ]
    const codes = classes.map((Class) => {
      const err = new Class('message')
      expect(err.name).toBe(Class.name)
      return err.code
    })
    expect([...codes].sort()).toEqual([...STORE_ERROR_CODES].sort())
  })

  it('are each documented in the README', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
    for (const code of STORE_ERROR_CODES) expect(readme, code).toContain(`| \`${code}\` |`)
  })
})
