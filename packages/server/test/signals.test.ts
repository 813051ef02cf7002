import { once } from 'node:events'
import { heapAfterGc as gc } from '@dcas/store/testing'
import { describe, expect, it } from 'vitest'
import { Deadlines } from '../src/deadlines.js'
import { anySignal, timeoutSignal } from '../src/signals.js'

// Each test lets a full collection run while its signal is pending: what only weak references hold goes.
describe('request deadlines', () => {
  it('a request combined with its caller still times out after a garbage collection', async () => {
    const deadlines = new Deadlines(50, new AbortController().signal)
    const caller = new AbortController()
    const signal = deadlines.request(caller.signal)
    await gc()
    await once(signal, 'abort')
    expect((signal.reason as Error).name).toBe('TimeoutError')
    expect(caller.signal.aborted).toBe(false)
  })

  it('background work times out after a collection, and is ended by the shutdown', async () => {
    const shutdown = new AbortController()
    const deadlines = new Deadlines(50, shutdown.signal)
    const timed = deadlines.background()
    await gc()
    await once(timed, 'abort')
    expect((timed.reason as Error).name).toBe('TimeoutError')

    const long = new Deadlines(3_600_000, shutdown.signal).background()
    shutdown.abort(new Error('closing'))
    expect(long.aborted).toBe(true)
    expect((long.reason as Error).message).toBe('closing')
  })

  it('timeoutSignal ends with the first of its timeout and its other signals', async () => {
    const other = new AbortController()
    const early = timeoutSignal(3_600_000, other.signal, undefined)
    other.abort(new Error('first'))
    expect((early.reason as Error).message).toBe('first')

    const late = timeoutSignal(50, new AbortController().signal)
    await gc()
    await once(late, 'abort')
    expect((late.reason as Error).name).toBe('TimeoutError')
  })
})

describe('anySignal', () => {
  it('keeps an inline timeout alive: it ends the combination after a garbage collection', async () => {
    const combined = anySignal(new AbortController().signal, AbortSignal.timeout(50))
    await gc()
    await once(combined, 'abort')
    expect((combined.reason as Error).name).toBe('TimeoutError')
  })

  it('returns a lone signal as it is, and is aborted at once by a source aborted already', () => {
    const one = new AbortController().signal
    expect(anySignal(undefined, one)).toBe(one)
    const done = AbortSignal.abort(new Error('before'))
    const combined = anySignal(new AbortController().signal, done)
    expect(combined.aborted).toBe(true)
    expect((combined.reason as Error).message).toBe('before')
  })

  it('leaves nothing of itself with a long-lived source once it is gone', async () => {
    const shutdown = new AbortController()
    // Rounds of 5,000 of each, collected between them (what stays of each round is what leaks).
    const rounds = async (count: number): Promise<void> => {
      for (let r = 0; r < count; r++) {
        for (let i = 0; i < 5_000; i++) {
          anySignal(new AbortController().signal, shutdown.signal)
          timeoutSignal(3_600_000, shutdown.signal)
        }
        await gc()
      }
    }
    await rounds(2)
    const before = await gc()
    // 200,000 in all: a record of each in the source, as Node 20's AbortSignal.any keeps, would be about 15 MB.
    await rounds(20)
    expect((await gc()) - before).toBeLessThan(2 * 1024 * 1024)
    const follower = anySignal(new AbortController().signal, shutdown.signal)
    shutdown.abort(new Error('closing'))
    expect((follower.reason as Error).message).toBe('closing')
  })
})
