/**
 * Test helpers of `@dcas/p2p`: the transport compliance suite, for vitest.
 *
 * @example
 * ```ts
 * import { randomBytes } from 'node:crypto'
 * import { createMemoryNetwork, memoryTransport } from '@dcas/p2p'
 * import { transportTests } from '@dcas/p2p/testing'
 *
 * const network = createMemoryNetwork()
 * transportTests({
 *   name: 'memory',
 *   createTransport: (init) => memoryTransport({ network, ...init }),
 *   createNodeId: () => randomBytes(32).toString('hex'),
 *   listenAddress: 'node:0',
 *   unreachableAddress: 'nowhere:1',
 * })
 * ```
 *
 * @packageDocumentation
 */
export { transportTests } from './transport-tests.js'
export type { TransportInit, TransportTestOptions } from './transport-tests.js'
