import { randomBytes } from 'node:crypto'
import { createMemoryNetwork, memoryTransport } from '../src/index.js'
import { transportTests } from '../src/testing/index.js'

const network = createMemoryNetwork()

transportTests({
  name: 'memory',
  createTransport: (init) => memoryTransport({ network, ...init }),
  createNodeId: () => randomBytes(32).toString('hex'),
  listenAddress: 'node:0',
  unreachableAddress: 'nowhere:1',
})
