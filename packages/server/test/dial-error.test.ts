import { once } from 'node:events'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { DialErrorEvent } from '../src/index.js'
import { Cluster, tempDir } from './helpers.js'

let dir: { path: string; cleanup: () => Promise<void> }
let cluster: Cluster

beforeEach(async () => {
  dir = await tempDir()
  cluster = new Cluster(dir.path)
})

afterEach(async () => {
  await cluster.close()
  await dir.cleanup()
})

describe('dial:error', () => {
  it('tells which bootstrap address refused this node, with ERR_PEER_UNAUTHORIZED', async () => {
    await cluster.add('a')
    const stranger = await cluster.add('stranger', [], { clusterSecret: 'another secret', bootstrap: ['a:1'] })
    const [event] = (await once(stranger, 'dial:error')) as [DialErrorEvent]
    expect(event).toMatchObject({ address: 'a:1', code: 'ERR_PEER_UNAUTHORIZED', message: expect.any(String) as string })
  })
})
