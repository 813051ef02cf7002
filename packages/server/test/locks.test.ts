import { describe, expect, it } from 'vitest'
import { KeyedLocks } from '../src/locks.js'

describe('KeyedLocks', () => {
  it('runs work for one key in call order, never overlapping, and other keys independently', async () => {
    const locks = new KeyedLocks()
    const log: string[] = []
    let releaseFirst!: () => void
    const gate = new Promise<void>((r) => (releaseFirst = r))
    const a1 = locks.run('a', async () => {
      log.push('a1 start')
      await gate
      log.push('a1 end')
    })
    const a2 = locks.run('a', () => {
      log.push('a2')
      return Promise.resolve()
    })
    await locks.run('b', () => {
      log.push('b')
      return Promise.resolve()
    })
    expect(log).toEqual(['a1 start', 'b'])
    releaseFirst()
    await Promise.all([a1, a2])
    expect(log).toEqual(['a1 start', 'b', 'a1 end', 'a2'])
  })

  it('keeps going after a failed run', async () => {
    const locks = new KeyedLocks()
    await expect(locks.run('k', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom')
    await expect(locks.run('k', () => Promise.resolve(7))).resolves.toBe(7)
  })

  it('counts pins', () => {
    const locks = new KeyedLocks()
    locks.pin('x')
    locks.pin('x')
    locks.unpin('x')
    expect(locks.pinned('x')).toBe(true)
    locks.unpin('x')
    expect(locks.pinned('x')).toBe(false)
  })
})
