// The `dcas` command line (commander): parses the arguments, runs one command, prints what
// happened for people (or JSON), and turns every failure into a message, a hint and an exit code.
import { createReadStream } from 'node:fs'
import { rename, stat, unlink } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { pipeline } from 'node:stream/promises'
import { Command, CommanderError, Option } from 'commander'
import { DEFAULT_CONFIG, LOG_LEVELS } from './config.js'
import { CliError, UsageError, codeOf, messageOf } from './errors.js'
import { writeFileAtomic } from './files.js'
import { formatBytes, plural, shortId, table } from './format.js'
import { peerAdvice } from './advice.js'
import { collect, commandKit, jsonOption, rootOption, type CliIO, type RootOptions, type RunState } from './command-kit.js'
import { addMaintenanceCommands } from './maintenance-commands.js'
import { addPlacementOptions, placementSettings, type PlacementFlags } from './placement-flags.js'
import { VERSION } from './version.js'

export type { CliIO } from './command-kit.js'

// The heavy modules (the node, fastify, pino, key generation) load only for the commands that need them,
// so `dcas ls` starts fast.
const lazy = {
  daemon: () => import('./daemon.js'),
  init: () => import('./init.js'),
  logger: () => import('./logger.js'),
  s3: () => import('./s3.js'),
}

/** Waits for SIGINT or SIGTERM; a second one exits at once. */
function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    const first = (signal: string): void => {
      process.off('SIGINT', onInt)
      process.off('SIGTERM', onTerm)
      const force = (): never => process.exit(1)
      process.once('SIGINT', force)
      process.once('SIGTERM', force)
      resolve(signal)
    }
    const onInt = (): void => first('SIGINT')
    const onTerm = (): void => first('SIGTERM')
    process.once('SIGINT', onInt)
    process.once('SIGTERM', onTerm)
  })
}

/** Builds the `dcas` program. */
function buildProgram(io: CliIO, state: RunState): Command {
  const kit = commandKit(io, state)
  const { home, out, warn, json, rootOf, client, progressOn, interruptible } = kit
  const program = new Command('dcas')
    .description('dcas: distributed content-addressable storage. Run a node, put and get files, replicated encrypted to its peers.')
    .version(VERSION, '-V, --version', 'print the version')
    .configureOutput({ writeOut: (s) => void io.stdout.write(s), writeErr: (s) => void io.stderr.write(s) })
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .helpCommand(true)
    .addHelpText(
      'after',
      '\nExit codes: 0 done, 1 unexpected failure, 2 usage or invalid key, 3 not initialised or bad config,\n' +
        '4 node not running or refused, 5 unknown key, 6 write quorum not reached, 7 data unavailable or corrupt, 130 interrupted.\n' +
        `Every command finds its node through DIR/api.json: DIR is --root, else $DCAS_ROOT, else ${home}.`,
    )

  program
    .command('init')
    .description('create a node in DIR: its identity, cluster secret and config.json (never overwrites)')
    .addOption(rootOption(home))
    .option('--cluster-secret <secret>', 'the secret every node of the cluster shares (default: a new random one)')
    .option('--join <file>', "take the cluster secret (and peers) from a file: another node's DIR/identity/cluster-secret, or a JSON join file")
    .option('--listen <host:port>', 'where the node listens for peers', DEFAULT_CONFIG.listen)
    .option('--peer <host:port>', 'a peer to dial (repeat for more)', collect)
    .option('--http <127.0.0.1:port>', 'the local HTTP API address (port 0 picks a free one)', DEFAULT_CONFIG.http)
  addPlacementOptions(program.commands.at(-1)!, 'written to config.json')
    .addOption(jsonOption())
    .action(async (opts: RootOptions & PlacementFlags & { clusterSecret?: string; join?: string; listen: string; peer?: string[]; http: string; json?: boolean }) => {
      const root = rootOf(opts)
      const { initNode } = await lazy.init()
      const result = await initNode({
        root,
        listen: opts.listen,
        http: opts.http,
        ...placementSettings(opts),
        ...(opts.peer === undefined ? {} : { peers: opts.peer }),
        ...(opts.clusterSecret === undefined ? {} : { clusterSecret: opts.clusterSecret }),
        ...(opts.join === undefined ? {} : { joinFile: resolve(opts.join) }),
      })
      if (opts.json === true) return json(result)
      out(`initialised a dcas node in ${root}${state.defaultRootUsed === undefined ? '' : ' (the default data directory: no --root given, DCAS_ROOT not set)'}`)
      out(`  node id         ${result.nodeId}`)
      out(`  age recipient   ${result.recipient}`)
      out(`  cluster secret  ${result.clusterSecret}, in ${result.files.clusterSecret}`)
      out(`  config          ${result.files.config}`)
      out(`start it:         dcas serve --root ${root}`)
      const port = result.config.listen.split(':').pop()
      out(`other nodes join: dcas init --root OTHER_DIR --join ${result.files.clusterSecret} --peer ${port === '0' ? 'ADDRESS (dcas serve logs it)' : `THIS_HOST:${port}`}`)
      out(`keep a copy of ${result.files.identity}/ somewhere safe: without it this node's replicas cannot be read`)
    })

  program
    .command('serve')
    .description('run the node in the foreground: peers, replication, healing, and the HTTP API on 127.0.0.1 (writes DIR/api.json)')
    .addOption(rootOption(home))
    .option('--listen <host:port>', "where to listen for peers (default: config.json's)")
    .option('--peer <host:port>', "a peer to dial, replacing config.json's list (repeat for more)", collect)
    .option('--http <127.0.0.1:port>', "the HTTP API address (default: config.json's; port 0 picks a free one)")
  addPlacementOptions(program.commands.at(-1)!, "default: config.json's")
    .option('--s3 <host:port>', 'also serve the S3 gateway there (port 0 picks one; dcas s3 credentials tells how to use it)')
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default('info'))
    .action(async (opts: RootOptions & PlacementFlags & { listen?: string; peer?: string[]; http?: string; s3?: string; logLevel: string }) => {
      const root = rootOf(opts)
      // Listened for from the start: a signal while the node starts (or just as it logs "ready") closes it
      // gracefully once it is up, instead of killing it with its api.json left behind.
      const stopSignal = (io.stopSignal ?? untilSignal)()
      // Marked before the node's modules load, so that `dcas serve & dcas put …` finds a node starting.
      const { markStarting } = await import('./api-file.js')
      const clearStarting = (await stat(join(root, 'config.json')).then(() => true, () => false)) ? await markStarting(root, Date.now()) : undefined
      const logger = (await lazy.logger()).createLogger({ level: opts.logLevel })
      const daemon = await (await lazy.daemon())
        .startDaemon({
          root,
          logger,
          ...(opts.listen === undefined ? {} : { listen: opts.listen }),
          ...(opts.peer === undefined ? {} : { peers: opts.peer }),
          ...(opts.http === undefined ? {} : { http: opts.http }),
          ...placementSettings(opts),
          ...(opts.s3 === undefined ? {} : { s3: opts.s3 }),
        })
        .catch(async (err: unknown) => {
          await clearStarting?.()
          throw err
        })
      // It runs until a signal, or until a drain finished (dcas drain): the node then stops by itself.
      const signal = await Promise.race([stopSignal, daemon.closed.then(() => undefined)])
      if (signal !== undefined) logger.info({ signal }, 'signal received; closing gracefully (send it again to exit at once)')
      await daemon.close()
      logger.flush()
    })

  program
    .command('put')
    .description('store a file (or standard input) under KEY on the running node')
    .argument('<key>', 'the key to store it under')
    .argument('[file]', 'the file to read, or - for standard input (default: standard input)')
    .addOption(rootOption(home))
    .option('--no-progress', 'no progress bar, even on a terminal')
    .addOption(jsonOption())
    .action(async (key: string, file: string | undefined, opts: RootOptions & { progress: boolean; json?: boolean }) => {
      const c = await client(opts)
      let size: number | undefined
      let source: AsyncIterable<Uint8Array>
      if (file === undefined || file === '-') {
        if (io.stdin.isTTY === true) throw new UsageError('nothing to put: give a FILE, or pipe the data in', { hint: `dcas put ${key} FILE, or: cat FILE | dcas put ${key}` })
        source = io.stdin as AsyncIterable<Uint8Array>
      } else {
        const info = await stat(file).catch((err: unknown) => {
          throw new UsageError(`cannot read ${file}: ${messageOf(err)}`, { cause: err })
        })
        if (!info.isFile()) throw new UsageError(`${file} is not a regular file`)
        size = info.size
        source = createReadStream(file, { highWaterMark: 1024 * 1024 })
      }
      const progress = await progressOn(opts.progress, `put ${key}`, size)
      const result = await interruptible((signal) =>
        c.put(key, source, { signal, onProgress: (n) => progress.update(n), ...(size === undefined ? {} : { size }) }).finally(() => progress.stop()),
      )
      if (opts.json === true) json(result)
      else out(`stored "${key}": ${formatBytes(result.size)} (${result.size} bytes), sha256 ${result.sha256}, version ${result.version}, on ${plural(result.replicas.length, 'peer')}`)
      // The peers it is placed on that hold no copy yet, and configured peers never reached when it is placed on none.
      const missing = new Set(result.placed.filter((id) => !result.replicas.includes(id)))
      for (const p of await c.peers().catch(() => [])) {
        const unreached = p.nodeId === undefined && result.placed.length === 0
        if (!unreached && (p.nodeId === undefined || !missing.has(p.nodeId))) continue
        const advice = peerAdvice(p) ?? 'connected, but it did not acknowledge a copy; see the node log'
        warn(`warning: peer ${p.address ?? shortId(p.nodeId ?? '')} holds no copy yet: ${advice}. It gets the object in the background once it can be reached.`)
      }
    })

  program
    .command('get')
    .description('read the object under KEY from the running node, to standard output or a file')
    .argument('<key>', 'the key to read')
    .addOption(rootOption(home))
    .option('-o, --output <file>', 'write to this file, whole or not at all (default, or -: standard output)')
    .option('--offset <bytes>', 'first byte to read', (v) => nonNegative(v, '--offset'))
    .option('--length <bytes>', 'how many bytes to read', (v) => nonNegative(v, '--length'))
    .option('--no-progress', 'no progress bar, even on a terminal')
    .action(async (key: string, opts: RootOptions & { output?: string; offset?: number; length?: number; progress: boolean }) => {
      const output = opts.output === '-' ? undefined : opts.output
      // Where it goes is checked before anything is read.
      if (output !== undefined) await checkOutput(output)
      const c = await client(opts)
      await interruptible(async (signal) => {
        const result = await c.get(key, { signal, ...(opts.offset === undefined ? {} : { offset: opts.offset }), ...(opts.length === undefined ? {} : { length: opts.length }) })
        const progress = await progressOn(opts.progress, `get ${key}`, result.length)
        const body = (async function* () {
          let n = 0
          for await (const piece of result.body) {
            n += piece.length
            progress.update(n)
            yield piece
          }
        })()
        try {
          if (output === undefined) {
            await pipeline(body, io.stdout, { end: false }).catch((err: unknown) => {
              if (codeOf(err) !== 'EPIPE') throw err // the reader stopped (dcas get k | head): not a failure
            })
            return
          }
          const target = resolve(output)
          const tmp = join(dirname(target), `.${basename(target)}.dcas-${randomBytes(4).toString('hex')}.part`)
          try {
            await pipeline(body, createWriteStream(tmp, { flags: 'wx' }))
            await rename(tmp, target)
          } catch (err) {
            await unlink(tmp).catch(() => {})
            // The file system's refusal, said of the user's path (not of the temp file beside it): a path that cannot
            // be a file is the command line's fault (exit 2); a full disk or an I/O error is not.
            const code = codeOf(err)
            if (err instanceof CliError || code === undefined || !/^E[A-Z]+$/.test(code)) throw err
            const message = `cannot write ${output}: ${messageOf(err).replaceAll(tmp, target)}`
            if (['ENOENT', 'ENOTDIR', 'EISDIR'].includes(code)) throw new UsageError(message, { cause: err })
            throw Object.assign(new Error(message, { cause: err }), { code })
          }
          out(`wrote "${key}" to ${target}: ${formatBytes(result.length)} (${result.length} bytes)${result.length === result.info.size ? `, sha256 ${result.info.sha256} verified` : ''}`)
        } finally {
          progress.stop()
        }
      })
    })

  program
    .command('rm')
    .description('delete the object under KEY on the node and every peer')
    .argument('<key>', 'the key to delete')
    .addOption(rootOption(home))
    .addOption(jsonOption())
    .action(async (key: string, opts: RootOptions & { json?: boolean }) => {
      const result = await (await client(opts)).delete(key)
      if (opts.json === true) return json(result)
      out(`deleted "${key}" on this node and ${plural(result.acknowledged.length, 'peer')}`)
      if (result.pending.length > 0) warn(`${plural(result.pending.length, 'peer')} not reached (${result.pending.map(shortId).join(', ')}) get the delete when they reconnect`)
    })

  program
    .command('ls')
    .description('list the keys (with PREFIX) on the running node, in order')
    .argument('[prefix]', 'only keys starting with this')
    .addOption(rootOption(home))
    .option('--limit <n>', 'at most this many keys (default: all)', (v) => positive(v, '--limit', 'keys'))
    .option('--after <key>', 'only keys after this one (to resume a listing)')
    .addOption(jsonOption())
    .action(async (prefix: string | undefined, opts: RootOptions & { limit?: number; after?: string; json?: boolean }) => {
      const c = await client(opts)
      let count = 0
      const rows: string[][] = []
      if (opts.json === true) io.stdout.write('[')
      let after = opts.after
      for (;;) {
        const want = opts.limit === undefined ? 1000 : Math.min(1000, opts.limit - count)
        if (want <= 0) break
        const page = await c.list({ limit: want, ...(prefix === undefined ? {} : { prefix }), ...(after === undefined ? {} : { after }) })
        for (const o of page.objects) {
          if (opts.json === true) io.stdout.write(`${count === 0 ? '\n' : ',\n'}  ${JSON.stringify(o)}`)
          else rows.push([formatBytes(o.size), new Date(o.updatedAt).toISOString().replace('T', ' ').slice(0, 19), o.key])
          count++
        }
        // Printed page by page, so a long listing neither waits nor piles up.
        if (rows.length > 0) out(table(rows.splice(0), { alignRight: [0] }))
        if (page.next === undefined) break
        after = page.next
      }
      if (opts.json === true) io.stdout.write(count === 0 ? ']\n' : '\n]\n')
    })

  program
    .command('stat')
    .description("show an object's size, SHA-256, version, chunks and which peers hold it")
    .argument('<key>', 'the key')
    .addOption(rootOption(home))
    .addOption(jsonOption())
    .action(async (key: string, opts: RootOptions & { json?: boolean }) => {
      const info = await (await client(opts)).head(key)
      if (opts.json === true) return json(info)
      out(
        table([
          ['key', info.key],
          ['size', `${formatBytes(info.size)} (${info.size} bytes)`],
          ['sha256', info.sha256],
          ['version', String(info.version)],
          ['chunks', String(info.chunks)],
          ['updated', new Date(info.updatedAt).toISOString()],
          ['replicas', info.replicas.length === 0 ? 'none' : info.replicas.join(', ')],
        ]),
      )
    })

  addMaintenanceCommands(program, kit)

  program
    .command('s3')
    .description('the S3 gateway of dcas serve --s3')
    .command('credentials')
    .description('print the S3 endpoint, region and access key, and how restic, rclone and the AWS CLI use them')
    .addOption(rootOption(home))
    .addOption(jsonOption())
    .action(async (opts: RootOptions & { json?: boolean }) => {
      const root = rootOf(opts)
      const [{ readApiFile }, { readS3Credentials, s3Instructions, S3_REGION }, { loadNode }] = await Promise.all([import('./api-file.js'), lazy.s3(), lazy.init()])
      // No node at all is said as every command says it (exit 3), not as a missing key.
      await loadNode(root)
      const running = (await readApiFile(root))?.s3
      const entry = running ?? { url: 'http://HOST:PORT', region: S3_REGION, ...((await readS3Credentials(root)) ?? {}) }
      if (entry.accessKeyId === undefined || entry.secretAccessKey === undefined) {
        throw new UsageError(`${root} has no S3 access key yet`, { hint: `dcas serve --root ${root} --s3 127.0.0.1:9000 makes one` })
      }
      const complete = entry as Required<typeof entry>
      if (opts.json === true) return json({ ...complete, running: running !== undefined })
      for (const line of s3Instructions(complete)) out(line)
      if (running === undefined) warn(`the S3 gateway is not running: start it with dcas serve --root ${root} --s3 HOST:PORT (then the endpoint shows here)`)
    })

  const identity = program.command('identity').description("the node's age identity (the key its replicas are encrypted to)")
  identity
    .command('export')
    .description('print the age identity (AGE-SECRET-KEY-1…) for safe keeping; age -d -i FILE opens any replica with it')
    .addOption(rootOption(home))
    .option('-o, --output <file>', 'write it to this file (mode 0600; never overwrites)')
    .action(async (opts: RootOptions & { output?: string }) => {
      const { text } = await (await lazy.init()).exportIdentity(rootOf(opts))
      if (opts.output !== undefined) {
        const target = resolve(opts.output)
        await writeFileAtomic(target, text, { exclusive: true }).catch((err: unknown) => {
          if (codeOf(err) === 'EEXIST') throw new UsageError(`${target} exists; nothing was written`, { hint: 'choose another file' })
          throw err
        })
        out(`wrote the age identity to ${target} (mode 0600)`)
        return
      }
      if (io.stdout.isTTY === true) warn('this is the secret key of the node: keep it private, and keep it safe (the whole identity/ directory is better)')
      io.stdout.write(text)
    })

  return program
}

function nonNegative(value: string, what: string, unit = 'bytes'): number {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw new UsageError(`${what} must be a whole number of ${unit}, got "${value}"`)
  return Number(value)
}

function positive(value: string, what: string, unit: string): number {
  const n = nonNegative(value, what, unit)
  if (n === 0) throw new UsageError(`${what} must be at least 1`)
  return n
}

/** Refuses an output path that cannot become a file: a directory, or one in a directory that does not exist. */
async function checkOutput(output: string): Promise<void> {
  const target = resolve(output)
  const info = await stat(target).catch(() => undefined)
  if (info?.isDirectory() === true) throw new UsageError(`${output} is a directory`, { hint: 'give the file to write, e.g. -o ' + join(output, 'NAME') })
  const parent = await stat(dirname(target)).catch(() => undefined)
  if (parent?.isDirectory() !== true) throw new UsageError(`cannot write ${output}: ${dirname(target)} is not a directory`, { hint: 'create it first, or write elsewhere' })
}

/**
 * Runs the `dcas` command line with `argv` (without `node` and the script) and resolves to
 * the exit code. Never throws: failures are printed to `io.stderr` as a message and a hint.
 */
export async function runCli(argv: string[], io: Partial<CliIO> = {}): Promise<number> {
  const streams: CliIO = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env, ...io }
  const state: RunState = {}
  const program = buildProgram(streams, state)
  try {
    await program.parseAsync(argv, { from: 'user' })
    return 0
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version end well; anything else commander refused is a usage error (already printed).
      return err.exitCode === 0 ? 0 : 2
    }
    const cliError = err instanceof CliError ? err : undefined
    if (cliError !== undefined) {
      streams.stderr.write(`dcas: ${cliError.message}\n`)
      if (cliError.hint !== undefined) streams.stderr.write(`  ${cliError.hint}\n`)
      if (state.defaultRootUsed !== undefined && ['ERR_NOT_INITIALIZED', 'ERR_NOT_RUNNING'].includes(cliError.code)) {
        streams.stderr.write(`  (${state.defaultRootUsed} is the default data directory, as no --root was given and DCAS_ROOT is not set)\n`)
      }
      return cliError.exitCode
    }
    // Node's system errors already start with their code ("ENOENT: no such file…"): it is not said twice.
    const code = codeOf(err)
    const message = messageOf(err)
    streams.stderr.write(`dcas: ${code === undefined || message.startsWith(code) ? '' : `${code}: `}${message}\n`)
    if (streams.env.DCAS_DEBUG !== undefined && err instanceof Error && err.stack !== undefined) streams.stderr.write(`${err.stack}\n`)
    return 1
  }
}
