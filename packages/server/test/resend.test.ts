import { describe, expect, it } from 'vitest'
import { ResendBudget } from '../src/replication.js'

describe('the resend budget of catch-up', () => {
  it('lets a peer have its burst at once, then makes the rest wait, per peer', async () => {
    const budget = new ResendBudget(1000, 10)
    const stopped = AbortSignal.abort()
    // Within the burst: no wait, so even an aborted signal does not interrupt it.
    await budget.take('a', 600, stopped)
    await budget.take('a', 400, stopped)
    // Beyond it: a wait, which the abort ends.
    await expect(budget.take('a', 100, stopped)).rejects.toThrow()
    // Another peer has its own burst.
    await budget.take('b', 1000, stopped)
  })
})
