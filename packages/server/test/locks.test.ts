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

  it('holds several keys at once: a caller that needs one of them waits for all to be released', async () => {
    const locks = new KeyedLocks()
    const log: string[] = []
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    let started!: () => void
    const holding = new Promise<void>((r) => (started = r))
    const held = locks.runAll(['b', 'a', 'c'], async () => {
      log.push('abc start')
      started()
      await gate
      log.push('abc end')
    })
    await holding
    const reversed = locks.runAll(['c', 'b'], () => {
      log.push('cb')
      return Promise.resolve()
    })
    await locks.run('d', () => {
      log.push('d')
      return Promise.resolve()
    })
    expect(log).toEqual(['abc start', 'd'])
    release()
    await Promise.all([held, reversed])
    expect(log).toEqual(['abc start', 'd', 'abc end', 'cb'])
    await expect(locks.runAll([], () => Promise.resolve(3))).resolves.toBe(3)
  })

  it('lets two callers that name the same keys in opposite orders both finish', async () => {
    const locks = new KeyedLocks()
    const order: string[] = []
    const first = locks.runAll(['x', 'y'], async () => {
      await Promise.resolve()
      order.push('xy')
    })
    const second = locks.runAll(['y', 'x'], () => {
      order.push('yx')
      return Promise.resolve()
    })
    await Promise.all([first, second])
    expect(order).toEqual(['xy', 'yx'])
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
