// The live status feed of the console: what makes it compute the status again, and how often.
import { EventEmitter } from 'node:events'
import type { Server } from '@dcas/server'
import { afterEach, expect, it, vi } from 'vitest'
import type { NodeStatus } from '../src/index.js'
import { createStatusFeed } from '../src/status-feed.js'

afterEach(() => {
  vi.useRealTimers()
})

it('computes again at once when a peer comes, and at most once per minInterval for failed dials', async () => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] })
  const server = new EventEmitter()
  let computed = 0
  const feed = createStatusFeed({
    server: server as unknown as Server,
    status: () => {
      computed++
      return Promise.resolve({} as NodeStatus)
    },
    minInterval: 2000,
  })
  feed.subscribe(() => {})
  await vi.advanceTimersByTimeAsync(0)
  expect(computed).toBe(1)
  // Every unreachable member's failed dials: not a computation each.
  for (let i = 0; i < 20; i++) server.emit('dial:error', { address: `127.0.0.1:${7000 + i}`, message: 'connect ECONNREFUSED' })
  await vi.advanceTimersByTimeAsync(1999)
  expect(computed).toBe(1)
  await vi.advanceTimersByTimeAsync(1)
  expect(computed).toBe(2)
  server.emit('peer:connect', { nodeId: 'b' })
  await vi.advanceTimersByTimeAsync(0)
  expect(computed).toBe(3)
  feed.close()
})
