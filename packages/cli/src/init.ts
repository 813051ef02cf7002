// `dcas init`: a new node's identity (TLS key and age key), its cluster secret and its config.
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, stat } from 'node:fs/promises'
import { generateIdentity, identityToRecipient, readIdentityFile, writeIdentityFile } from '@dcas/crypto'
import { loadOrCreateIdentity, nodeIdFromCertificate } from '@dcas/p2p'
import { DEFAULT_CONFIG, checkConfig, parseAddress, parseHttpAddress, paths, readConfig, type NodeConfig, type PlacementSettings } from './config.js'
import { AlreadyInitializedError, ConfigError, NotInitializedError, UsageError, throwIfAborted } from './errors.js'
import { writeFileAtomic } from './files.js'
import { createS3Credentials } from './s3.js'

/** Shortest cluster secret `dcas init` accepts. */
export const MIN_CLUSTER_SECRET_LENGTH = 16

/** Options of {@link initNode}; the placement settings (write quorum, replicas, zone, capacity…) go to `config.json`. */
export interface InitOptions extends PlacementSettings {
  /** The data directory (created when missing). */
  root: string
  /** The cluster's shared secret; default: a new random one (unless `joinFile`). */
  clusterSecret?: string
  /**
   * A file holding the cluster secret: another node's `identity/cluster-secret`, or a JSON
   * join file `{ "clusterSecret": "…", "peers": ["host:port", …] }` whose peers are added.
   */
  joinFile?: string
  /** Where the node listens for peers (default `0.0.0.0:7420`). */
  listen?: string
  /** Peers to dial. */
  peers?: string[]
  /** The HTTP API's address, `127.0.0.1:PORT` (default `127.0.0.1:7421`). */
  http?: string
  signal?: AbortSignal
}

/** What {@link initNode} made. */
export interface InitResult {
  root: string
  /** The node id: SHA-256 of its TLS certificate's public key. */
  nodeId: string
  /** The node's `age1…` recipient: every replica is encrypted to it. */
  recipient: string
  /** Where the cluster secret came from. */
  clusterSecret: 'generated' | 'given' | 'joined'
  /** The config written. */
  config: NodeConfig
  /** Files written: `config`, `clusterSecret`, `ageIdentity`, `s3Credentials`, `identity` (directory). */
  files: { config: string; clusterSecret: string; ageIdentity: string; s3Credentials: string; identity: string }
}

const exists = (path: string): Promise<boolean> =>
  stat(path).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return false
      throw err
    },
  )

function checkSecret(secret: string, from: string): string {
  const s = secret.trim()
  if (s.length === 0) throw new UsageError(`${from} is empty`)
  if (/[\r\n]/.test(s)) throw new UsageError(`${from} must be one line`)
  if (s.length < MIN_CLUSTER_SECRET_LENGTH) throw new UsageError(`${from} is ${s.length} characters: use at least ${MIN_CLUSTER_SECRET_LENGTH}`, { hint: 'leave --cluster-secret out and dcas init makes a strong one' })
  return s
}

/** Reads a join file: a bare secret, or `{ clusterSecret, peers? }`. */
async function readJoinFile(file: string): Promise<{ secret: string; peers: string[] }> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new UsageError(`cannot read the join file ${file}: ${(err as Error).message}`, { cause: err, hint: "give a copy of another node's DIR/identity/cluster-secret" })
  }
  if (!text.trimStart().startsWith('{')) return { secret: checkSecret(text, `the join file ${file}`), peers: [] }
  let parsed: { clusterSecret?: unknown; peers?: unknown }
  try {
    parsed = JSON.parse(text) as typeof parsed
  } catch (err) {
    throw new ConfigError(`the join file ${file} is not valid JSON: ${(err as Error).message}`, { cause: err })
  }
  if (typeof parsed.clusterSecret !== 'string') throw new ConfigError(`the join file ${file} has no "clusterSecret" string`)
  const peers = parsed.peers ?? []
  if (!Array.isArray(peers) || !peers.every((p) => typeof p === 'string')) throw new ConfigError(`the join file ${file}: "peers" must be a list of "host:port" strings`)
  for (const p of peers) parseAddress(p, `a peer in ${file}`)
  return { secret: checkSecret(parsed.clusterSecret, `the cluster secret in ${file}`), peers }
}

/** The node id of an initialised data directory, if its certificate is there. */
export async function nodeIdOf(root: string): Promise<string | undefined> {
  try {
    return nodeIdFromCertificate(await readFile(paths(root).tlsCertificate, 'utf8'))
  } catch {
    return undefined
  }
}

/**
 * Creates a node in `root`: its TLS identity (the node id), its age identity (the key every
 * replica is encrypted to), the cluster secret and `config.json`. Refuses, changing nothing,
 * when any of them is already there: overwriting an identity would orphan every replica.
 */
export async function initNode(options: InitOptions): Promise<InitResult> {
  throwIfAborted(options.signal)
  const { root } = options
  const files = paths(root)
  if (options.clusterSecret !== undefined && options.joinFile !== undefined) throw new UsageError('give either --cluster-secret or --join, not both')
  if (options.listen !== undefined) parseAddress(options.listen, '--listen')
  if (options.http !== undefined) parseHttpAddress(options.http)
  for (const p of options.peers ?? []) parseAddress(p, '--peer')

  for (const f of [files.config, files.ageIdentity, files.clusterSecret, files.tlsKey, files.tlsCertificate, files.s3Credentials]) {
    if (await exists(f)) {
      const nodeId = await nodeIdOf(root)
      throw new AlreadyInitializedError(`${root} already holds a dcas node${nodeId === undefined ? '' : ` (${nodeId})`}: ${f} exists; nothing was changed`, {
        hint: `run dcas serve --root ${root} to start it, or choose another --root for a new node (keep ${files.identity}: without it the node's replicas cannot be read)`,
      })
    }
  }

  let secret: string
  let source: InitResult['clusterSecret']
  const peers = [...(options.peers ?? [])]
  if (options.clusterSecret !== undefined) {
    secret = checkSecret(options.clusterSecret, 'the cluster secret')
    source = 'given'
  } else if (options.joinFile !== undefined) {
    const joined = await readJoinFile(options.joinFile)
    secret = joined.secret
    for (const p of joined.peers) if (!peers.includes(p)) peers.push(p)
    source = 'joined'
  } else {
    secret = randomBytes(32).toString('base64url')
    source = 'generated'
  }
  const config = checkConfig(
    {
      ...DEFAULT_CONFIG,
      ...(options.listen === undefined ? {} : { listen: options.listen }),
      ...(options.http === undefined ? {} : { http: options.http }),
      ...Object.fromEntries(
        (['writeQuorum', 'replicas', 'zone', 'capacity', 'announce', 'lostAfter', 'repairRate'] as const).flatMap((k) => (options[k] === undefined ? [] : [[k, options[k]]])),
      ),
      peers,
    },
    'the options',
  )

  await mkdir(files.identity, { recursive: true, mode: 0o700 })
  const exclusive = async (write: () => Promise<void>, file: string): Promise<void> => {
    try {
      await write()
    } catch (err) {
      const code = (err as { code?: string }).code
      if (code === 'EEXIST' || code === 'ERR_IDENTITY_FILE_EXISTS') throw new AlreadyInitializedError(`${file} appeared while dcas init ran; nothing was overwritten`, { cause: err })
      throw err
    }
  }
  await exclusive(() => writeFileAtomic(files.clusterSecret, `${secret}\n`, { exclusive: true }), files.clusterSecret)
  const ageIdentity = await generateIdentity(options.signal === undefined ? {} : { signal: options.signal })
  await exclusive(() => writeIdentityFile(files.ageIdentity, ageIdentity), files.ageIdentity)
  const { nodeId } = await loadOrCreateIdentity(files.identity)
  await exclusive(async () => void (await createS3Credentials(root)), files.s3Credentials)
  await exclusive(() => writeFileAtomic(files.config, `${JSON.stringify(config, null, 2)}\n`, { exclusive: true }), files.config)
  return {
    root,
    nodeId,
    recipient: await identityToRecipient(ageIdentity),
    clusterSecret: source,
    config,
    files: { config: files.config, clusterSecret: files.clusterSecret, ageIdentity: files.ageIdentity, s3Credentials: files.s3Credentials, identity: files.identity },
  }
}

/** Reads the node's config and checks its identity is there; throws `ERR_NOT_INITIALIZED` otherwise. */
export async function loadNode(root: string): Promise<{ config: NodeConfig; nodeId: string }> {
  const config = await readConfig(root)
  const nodeId = await nodeIdOf(root)
  const hasAge = await exists(paths(root).ageIdentity)
  if (config === undefined || nodeId === undefined || !hasAge) {
    const missing = config === undefined ? paths(root).config : nodeId === undefined ? paths(root).tlsCertificate : paths(root).ageIdentity
    throw new NotInitializedError(`${root} is not a dcas node: ${missing} is missing`, { hint: `run dcas init --root ${root} first (or point --root at an existing node)` })
  }
  return { config, nodeId }
}

/** The node's age identity file as it is on disk (`AGE-SECRET-KEY-1…` with its comments). */
export async function exportIdentity(root: string, options: { signal?: AbortSignal } = {}): Promise<{ text: string; identities: string[] }> {
  throwIfAborted(options.signal)
  const file = paths(root).ageIdentity
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotInitializedError(`${root} holds no age identity (${file} is missing)`, { cause: err, hint: `run dcas init --root ${root} first` })
    throw err
  }
  return { text, identities: await readIdentityFile(file) }
}
