// The server each gateway test runs over.
import type { GatewayServer } from '../src/store-api.js'
import { memoryServer } from './memory-server.js'

export async function makeServer(): Promise<{ server: GatewayServer; close: () => Promise<void> }> {
  return Promise.resolve({ server: memoryServer(), close: () => Promise.resolve() })
}
