// A TCP transport in its own process, for the tests that kill or freeze the remote side.
// Listens on 127.0.0.1:0 with the cluster secret from DCAS_TEST_SECRET, prints
// `{"address","nodeId"}` on one line, then answers every stream by writing 64 KiB
// chunks until the stream or the process dies.
import { createIdentity, tcpTransport } from '../src/index.js'

const secret = process.env.DCAS_TEST_SECRET
if (secret === undefined) throw new Error('DCAS_TEST_SECRET is not set')
const transport = tcpTransport({ identity: await createIdentity(), clusterSecret: secret })
const chunk = new Uint8Array(64 * 1024).fill(0x61)
const address = await transport.listen('127.0.0.1:0', (connection) => {
  void (async () => {
    for await (const stream of connection.incoming) {
      void (async () => {
        try {
          for (;;) await stream.write(chunk)
        } catch {
          // The parent went away: nothing to do.
        }
      })()
    }
  })()
})
process.stdout.write(`${JSON.stringify({ address, nodeId: transport.nodeId })}\n`)
