import { describe, expect, it } from 'vitest'
import { assertValidKey, MAX_KEY_BYTES } from '../src/index.js'

const rejects = (key: unknown): string | undefined => {
  try {
    assertValidKey(key)
    return undefined
  } catch (err) {
    return (err as { code?: string }).code
  }
}

describe('keys', () => {
  it('accepts path-like strings as opaque keys', () => {
    for (const key of ['item_0', '../../x', 'a/../../b', '/etc/passwd', 'ключ', '🙂']) expect(rejects(key)).toBeUndefined()
  })

  it('accepts exactly 1024 bytes of UTF-8 and rejects 1025', () => {
    expect(rejects('x'.repeat(MAX_KEY_BYTES))).toBeUndefined()
    expect(rejects('x'.repeat(MAX_KEY_BYTES + 1))).toBe('ERR_INVALID_KEY')
    // 2-byte characters: 512 fit, 513 do not
    expect(rejects('é'.repeat(512))).toBeUndefined()
    expect(rejects('é'.repeat(513))).toBe('ERR_INVALID_KEY')
  })

  it('rejects empty keys, NUL, lone surrogates and non-strings', () => {
    expect(rejects('')).toBe('ERR_INVALID_KEY')
    expect(rejects('a\0b')).toBe('ERR_INVALID_KEY')
    expect(rejects('\ud800')).toBe('ERR_INVALID_KEY')
    expect(rejects(42)).toBe('ERR_INVALID_KEY')
    expect(rejects(undefined)).toBe('ERR_INVALID_KEY')
  })
})
