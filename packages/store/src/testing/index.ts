/**
 * Test helpers of `@dcas/store`: the in-memory implementations and the compliance suites that
 * every {@link BlobStore} and {@link Index} passes (written with vitest, an optional peer
 * dependency needed only here).
 *
 * @example
 * ```ts
 * import { blobStoreTests, createMemoryBlobStore } from '@dcas/store/testing'
 *
 * blobStoreTests({
 *   setup: async () => createMemoryBlobStore(),
 *   teardown: (store) => store.close(),
 *   damage: (store, id) => store.damage(id),
 * })
 * ```
 *
 * @packageDocumentation
 */

import type { BlobStore, Index } from '../types.js'

export { createMemoryBlobStore } from '../blob/memory-blob-store.js'
export { createMemoryIndex } from '../db/memory-index.js'
export { blobStoreTests } from './blob-store-tests.js'
export type { BlobStoreTestOptions } from './blob-store-tests.js'
export { indexTests } from './index-tests.js'
export type { IndexTestOptions } from './index-tests.js'
export { collect, heapAfterGc, patternBytes, sha256, toArray } from './helpers.js'
export type { BlobStore, Index }
