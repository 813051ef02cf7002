// The dcas server each gateway test runs over: a real one, on a temporary data directory.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer, type Server, type ServerOptions } from '@dcas/server'

export async function makeServer(options: Partial<ServerOptions> = {}): Promise<{ server: Server; root: string; close: () => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), 'dcas-s3-test-'))
  const server = createServer({ ...options, root })
  await server.start()
  return {
    server,
    root,
    close: async () => {
      await server.close()
      await rm(root, { recursive: true, force: true })
    },
  }
}
