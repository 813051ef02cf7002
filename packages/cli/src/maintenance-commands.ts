// The commands that look after a running node rather than its objects: status, open (the web
// console), scrub and drain.
import { join } from 'node:path'
import type { Command } from 'commander'
import { peerAdvice } from './advice.js'
import { parseDuration } from './config.js'
import { UnavailableError, messageOf } from './errors.js'
import { formatBytes, formatDuration, plural, shortId, table } from './format.js'
import { jsonOption, rootOption, type CommandKit, type RootOptions } from './command-kit.js'
import type { NodeStatus } from './status.js'

/** Adds `status`, `open`, `scrub` and `drain` to `program`. */
export function addMaintenanceCommands(program: Command, kit: CommandKit): void {
  const { home, out, warn, json, rootOf, client, interruptible } = kit
  program
    .command('status')
    .description('show the node: peers (connected or not, and why), replica health, disk and memory use')
    .addOption(rootOption(home))
    .addOption(jsonOption())
    .action(async (opts: RootOptions & { json?: boolean }) => {
      const s = await (await client(opts)).status()
      if (opts.json === true) return json(s)
      printStatus(s, out)
    })

  program
    .command('open')
    .description('open the web console of the running node in a browser, logged in by a one-time link (also printed)')
    .addOption(rootOption(home))
    .option('--no-browser', 'only print the link')
    .action(async (opts: RootOptions & { browser: boolean }) => {
      const { url, expiresAt } = await (await client(opts)).consoleLink()
      out(url)
      warn(`a one-time link to the console, good until ${new Date(expiresAt).toLocaleTimeString()}; later, log in with the token in ${join(rootOf(opts), 'api.json')}`)
      if (!opts.browser) return
      const opened = await openBrowser(url)
      if (opened !== true) warn(`could not start a browser (${opened}): open the link above yourself`)
    })

  program
    .command('scrub')
    .description('verify every object on the node (every chunk re-hashed), healing lost or damaged chunks from peers, and challenge a sample of the copies peers hold')
    .addOption(rootOption(home))
    .addOption(jsonOption())
    .action(async (opts: RootOptions & { json?: boolean }) => {
      const result = await (await client(opts)).scrub()
      if (opts.json === true) json(result)
      else {
        out(`scrubbed ${plural(result.objects + result.failed.length, 'object')} (${formatBytes(result.bytes)} verified): ${plural(result.healed, 'chunk')} healed from peers, ${result.failed.length} failed`)
        for (const f of result.failed) out(`  ${f.key}: ${f.code ?? 'error'}: ${f.message}`)
        const lost = result.lostCopies ?? []
        out(`audited ${plural(result.audited ?? 0, 'copy', 'copies')} on peers: ${lost.length === 0 ? 'each proved it holds its bytes' : `${lost.length} lost, being replicated again`}`)
        for (const l of lost) out(`  ${l.key} on ${l.nodeId.slice(0, 12)}: ${l.reason}`)
      }
      if (result.failed.length > 0) {
        throw new UnavailableError(`${plural(result.failed.length, 'object')} could not be verified or healed`, { hint: 'connect the peers that hold them (dcas status), then scrub again' })
      }
    })

  program
    .command('drain')
    .description('before this node leaves the cluster for good: move the replicas it holds for other nodes away, then stop it')
    .addOption(rootOption(home))
    .option('--timeout <duration>', 'give up after this long, like 2h (the node stays leaving; drain again to go on)')
    .addOption(jsonOption())
    .action(async (opts: RootOptions & { timeout?: string; json?: boolean }) => {
      const c = await client(opts)
      const timeout = opts.timeout === undefined ? undefined : parseDuration(opts.timeout, '--timeout')
      // Loaded here only: the other commands start without the server package.
      const { timeoutSignal } = await import('@dcas/server')
      const result = await interruptible((signal) =>
        c.drain({
          signal: timeout === undefined ? signal : timeoutSignal(timeout, signal),
          onProgress: (remaining) => {
            if (opts.json !== true) warn(`draining: ${plural(remaining, 'replica')} of other nodes still here`)
          },
        }),
      )
      if (opts.json === true) return json(result)
      out(`drained: the ${plural(result.held, 'replica')} held for other nodes are on other nodes now; the node stops. Remove its data directory once you no longer need its own objects.`)
    })
}

function printStatus(s: NodeStatus, out: (line: string) => void): void {
  const connected = s.peers.filter((p) => p.connected).length
  const lost = s.peers.filter((p) => p.state === 'lost').length
  const leaving = s.peers.filter((p) => p.state === 'leaving').length
  out(`node     ${s.nodeId}  (pid ${s.pid}, up ${formatDuration(s.uptime)}, dcas ${s.version})`)
  out(`listens  ${s.address} for peers; API ${s.api}`)
  out(`data     ${s.root}`)
  out(`peers    ${s.peers.length} known, ${connected} connected${lost > 0 ? `, ${lost} lost` : ''}${leaving > 0 ? `, ${leaving} leaving` : ''}`)
  if (s.peers.length > 0) {
    const rows = s.peers.map((p) => [
      '',
      p.nodeId === undefined ? '-' : shortId(p.nodeId),
      p.address ?? '(dials us)',
      p.zone ?? '',
      p.connected ? 'connected' : `not connected${p.error?.code === undefined ? '' : ` (${p.error.code})`}`,
      p.state === undefined || p.state === 'active' ? '' : p.state,
    ])
    out(table(rows))
    for (const p of s.peers) {
      const advice = peerAdvice(p)
      if (advice !== undefined && (p.error !== undefined || p.behind !== undefined)) out(`  ${p.address ?? shortId(p.nodeId ?? '')}: ${advice}`)
    }
  }
  const o = s.objects
  const r = s.replication
  const spread = s.peers.length === 0 ? 'no peers known, so no replicas' : `${o.replicated} with ${r.target === 1 ? 'its 1 copy' : `all ${r.target} copies`}, ${o.lagging} lagging (${formatBytes(o.lagBytes)}), ${o.unreplicated} on no peer`
  out(`objects  ${plural(o.objects, 'object')} (${formatBytes(o.bytes)}): ${spread}`)
  out(`placement ${placementLine(r)}`)
  out(`disk     blobs ${formatBytes(s.disk.blobs)}, replicas for peers ${formatBytes(s.disk.replicas)}, index ${formatBytes(s.disk.index)}; ${formatBytes(s.disk.free)} free`)
  out(`memory   rss ${formatBytes(s.memory.rss)} (peak ${formatBytes(s.memory.maxRss)}), heap ${formatBytes(s.memory.heapUsed)}`)
  const scrub = s.lastScrub === undefined ? 'no scrub since the start' : `last scrub ${new Date(s.lastScrub.at).toISOString()}: ${s.lastScrub.objects} objects, ${s.lastScrub.healed} healed, ${s.lastScrub.failed.length} failed`
  out(`health   ${s.healed} chunks healed from peers since the start; ${scrub}`)
}

/** Placement as one line: copies per object, then what repair has left or that it is settled. */
export function placementLine(r: NodeStatus['replication']): string {
  const counts = Object.entries(r.objectsByCopies)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([copies, n]) => `${n} with ${copies}`)
  const copies = `${plural(r.target, 'copy').replace('copys', 'copies')} per object${counts.length === 0 ? '' : ` (${counts.join(', ')})`}`
  if (r.repair.settled) return `${copies}; settled`
  const eta = r.repair.etaSeconds === undefined ? '' : `, about ${formatDuration(r.repair.etaSeconds)} left`
  return `${copies}; repairing or moving ${plural(r.repair.objectsLeft, 'object')} (${formatBytes(r.repair.bytesLeft)} to copy${eta})`
}

/** Opens `url` with the system's opener; resolves to true once it started, or why it could not. */
async function openBrowser(url: string): Promise<true | string> {
  const [command, args] = process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '""', url]] : ['xdg-open', [url]]
  const { spawn } = await import('node:child_process')
  return new Promise((resolve) => {
    const child = spawn(command, args, { detached: true, stdio: 'ignore' })
    child.once('error', (err) => resolve(`${command}: ${messageOf(err)}`))
    child.once('spawn', () => {
      child.unref()
      resolve(true)
    })
  })
}
