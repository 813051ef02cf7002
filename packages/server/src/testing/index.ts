/**
 * @packageDocumentation
 *
 * Test helpers for dcas: a server in a child process (real TCP, real disk)
 * that tests, benchmarks and fault injectors drive over IPC, and
 * deterministic test data, so nothing large crosses the IPC channel.
 *
 * @example
 * ```ts
 * import { spawnNode, dataDigest } from '@dcas/server/testing'
 *
 * const a = await spawnNode({ root: '/tmp/a', clusterSecret: 's' })
 * const b = await spawnNode({ root: '/tmp/b', clusterSecret: 's', bootstrap: [a.address] })
 * await b.waitForPeers(1)
 * await b.store('big', 64 * 1024 * 1024, 'seed-1')
 * const { sha256 } = await b.read('big')
 * console.log(sha256 === (await dataDigest(64 * 1024 * 1024, 'seed-1')))
 * await Promise.all([a.close(), b.close()])
 * ```
 */

export { spawnNode, NodeRequestError } from './spawn.js'
export type { NodeHandle, NodeUsage, SpawnOptions } from './spawn.js'
export type { ChildLogLevel, ChildServerOptions } from './protocol.js'
export { dataDigest, digestOf, generateData } from './data.js'
