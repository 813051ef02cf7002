// The original design's example, made to show every promise of dcas: three servers, four
// items stored on :7000 and replicated encrypted, one deleted everywhere, one lost locally
// and read back from the peers. Each step checks what it shows and fails loudly if it does not hold.
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer, type Server } from '@dcas/server'
import type { DemoOptions } from './args.js'

/** A step of the demo that did not hold. */
export class DemoStepError extends Error {
  constructor(
    readonly step: string,
    message: string,
  ) {
    super(`step "${step}" failed: ${message}`)
    this.name = 'DemoStepError'
  }
}

interface Node {
  name: string
  server: Server
  root: string
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name))
}

async function collect(source: AsyncIterable<Uint8Array | string>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const p of source) parts.push(Buffer.from(p))
  return Buffer.concat(parts)
}

/** Runs the demo, printing one line per event through `print`. */
export async function runDemo(options: DemoOptions, print: (line: string) => void = console.log): Promise<void> {
  const base = options.data ?? (await mkdtemp(join(tmpdir(), 'dcas-demo-')))
  const clusterSecret = randomBytes(32).toString('base64url')
  const nodes: Node[] = []
  const names = new Map<string, string>()
  const say = (who: string, text: string): void => print(`${who.padStart(6)}  ${text}`)
  const check = (step: string, ok: boolean, why: string): void => {
    if (!ok) throw new DemoStepError(step, why)
  }
  const nameOf = (nodeId: string): string => names.get(nodeId) ?? nodeId.slice(0, 8)

  try {
    // 1. three servers: the second dials the first, the third dials both
    for (const [i, port] of options.ports.entries()) {
      const root = join(base, String(port === 0 ? `node${i}` : port))
      const bootstrap = nodes.map((n) => n.server.address)
      const server = createServer({ root, listen: `127.0.0.1:${port}`, bootstrap, clusterSecret })
      await server.start()
      const name = `:${server.address.split(':').pop()!}`
      names.set(server.nodeId, name)
      nodes.push({ name, server, root })
      say(name, `listening as node ${server.nodeId.slice(0, 16)}…, data in ${root}`)
    }
    const [first, second, third] = nodes as [Node, Node, Node]

    // 2. wait for every connection: each node ends up with the other two
    await Promise.all(nodes.map((n) => n.server.waitForPeers(2, { signal: AbortSignal.timeout(10_000) }))).catch(() => {
      throw new DemoStepError('connect', 'the three servers did not all connect to each other within 10 s')
    })
    say(second.name, `connected to ${first.name}`)
    say(third.name, `connected to ${first.name} and ${second.name}`)

    // 3. store four items on the third server
    for (let i = 0; i < 4; i++) {
      const key = `item_${i}`
      const result = await third.server.store(key, `big conten${i}`)
      say(third.name, `Server ${third.name.slice(1)} stream: ${result.size}`)
      const holders = result.replicas.map(nameOf).sort()
      check('store', result.replicas.length === 2, `${key} was acknowledged by ${holders.join(', ') || 'no peer'}, not by both peers`)
      say(third.name, `${key} stored as ${result.sha256.slice(0, 16)}…, acknowledged by ${holders.join(' and ')}`)
    }

    // 4. peers hold only ciphertext: no content and no key name in any of their files
    for (const peer of [first, second]) {
      const files = await filesUnder(peer.root)
      let leaks = 0
      for (const f of files) {
        const content = await readFile(f)
        for (let i = 0; i < 4; i++) if (content.includes(`big conten${i}`) || content.includes(`item_${i}`)) leaks++
      }
      check('ciphertext', leaks === 0, `${peer.name} has plaintext in its data directory`)
      say(peer.name, `holds only ciphertext: no item content or key name in its ${files.length} files`)
    }

    // 5. delete item_1 everywhere
    const countReplicas = async (peer: Node): Promise<number> => (await filesUnder(join(peer.root, 'replicas', third.server.nodeId, 'blobs'))).length
    const before = await Promise.all([first, second].map(countReplicas))
    const deleted = await third.server.delete('item_1')
    check('delete', deleted.acknowledged.length === 2 && deleted.pending.length === 0, `item_1 was removed by ${deleted.acknowledged.map(nameOf).join(', ') || 'no peer'} only`)
    check('delete', !(await third.server.has('item_1')), 'item_1 is still listed on the owner')
    say(third.name, `deleted item_1, acknowledged by ${deleted.acknowledged.map(nameOf).sort().join(' and ')}`)
    for (const [i, peer] of [first, second].entries()) {
      const after = await countReplicas(peer)
      check('delete', after === before[i]! - 2, `${peer.name} holds ${after} replica blobs, expected ${before[i]! - 2}`)
      say(peer.name, `freed item_1's chunk and manifest: ${after} replica blobs left (was ${before[i]!})`)
    }

    // 6. lose item_2 locally (its blob is named by the SHA-256 of its content) and read it back
    const plainId = createHash('sha256').update('big conten2').digest('hex')
    const blobPath = join(third.root, 'blobs', plainId.slice(0, 2), plainId.slice(2, 4), plainId)
    await rm(blobPath)
    say(third.name, `lost its local copy of item_2 (blobs/${plainId.slice(0, 2)}/${plainId.slice(2, 4)}/${plainId.slice(0, 12)}…)`)
    let healedFrom: string | undefined
    third.server.once('healed', (e) => (healedFrom = e.from))
    const content = (await collect(third.server.read('item_2'))).toString()
    check('read after loss', content === 'big conten2', `read back "${content}"`)
    check('read after loss', healedFrom !== undefined, 'the read did not go to a peer')
    const restored = createHash('sha256').update(await readFile(blobPath)).digest('hex') === plainId
    check('read after loss', restored, 'the local copy was not restored')
    say(third.name, `read item_2 back from ${nameOf(healedFrom!)}, verified and healed locally: "${content}"`)
  } finally {
    // 7. close everything
    await Promise.allSettled(nodes.map((n) => n.server.close()))
    if (options.data === undefined) await rm(base, { recursive: true, force: true })
  }
  say('demo', 'all three servers closed; every step held')
}
