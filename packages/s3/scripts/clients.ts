// `pnpm test:s3-clients`: the real S3 clients against a two-node dcas cluster (`dcas serve --s3`):
// restic (init, backup, check --read-data, restore), rclone (sync and check with odd key names), the
// AWS CLI (multipart cp, ls, s3api copy and conditional writes; every `aws` on the PATH and
// /usr/bin/aws), s3cmd (put, get, ls, del) and boto3 (its default checksums). Clients that are absent
// are installed with apt-get. Every command has a time limit, and so has the whole run.
//
// `--endpoint URL --access-key-id ID --secret-access-key SECRET` runs the clients against another
// S3 endpoint instead (no cluster is started).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, realpathSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const MiB = 1024 * 1024
const COMMAND_TIMEOUT_MS = 180_000
const RUN_TIMEOUT_MS = 15 * 60_000
const BIN = fileURLToPath(new URL('../../cli/dist/bin.js', import.meta.url))

interface Endpoint {
  url: string
  region: string
  accessKeyId: string
  secretAccessKey: string
}

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : undefined
}

function log(line: string): void {
  process.stdout.write(`s3-clients: ${line}\n`)
}

/** Runs a command to its end within the time limit; throws with its output on a non-zero exit. */
async function run(cmd: string, args: string[], options: { env?: Record<string, string>; input?: string; expectFailure?: boolean } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    // The endpoints are plain HTTP: a CA bundle from the environment only trips clients that cannot load one (rclone).
    const env: NodeJS.ProcessEnv = { ...process.env, ...options.env }
    delete env.AWS_CA_BUNDLE
    const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (b: Buffer) => (out += b.toString()))
    child.stderr.on('data', (b: Buffer) => (out += b.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), COMMAND_TIMEOUT_MS)
    child.stdin.end(options.input ?? '')
    child.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      const failed = code !== 0
      if (failed === (options.expectFailure === true)) resolve(out)
      else reject(new Error(`${cmd} ${args.join(' ')} ${failed ? `exited ${code ?? signal}` : 'succeeded but should have failed'}:\n${out.slice(-3000)}`))
    })
  })
}

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0

/** Installs the clients that are absent, with apt-get. */
function ensureClients(): void {
  const packages: Record<string, string> = { restic: 'restic', rclone: 'rclone', s3cmd: 's3cmd', aws: 'awscli' }
  const missing = Object.entries(packages)
    .filter(([cmd]) => !has(cmd))
    .map(([, pkg]) => pkg)
  if (missing.length === 0) return
  log(`installing ${missing.join(', ')} with apt-get`)
  const sudo = process.getuid?.() === 0 ? [] : ['sudo', '-n']
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  for (const args of [['apt-get', 'update', '-qq'], ['apt-get', 'install', '-y', '-qq', ...missing]]) {
    const res = spawnSync(sudo[0] ?? args[0]!, [...sudo.slice(1), ...(sudo.length > 0 ? args : args.slice(1))], { stdio: 'inherit', env, timeout: 600_000 })
    if (res.status !== 0) throw new Error(`${args.join(' ')} failed (status ${res.status ?? res.signal}): install ${missing.join(', ')} by hand`)
  }
}

// ---- test data ------------------------------------------------------------------------------

async function writeTree(root: string, files: Record<string, number>): Promise<void> {
  for (const [name, size] of Object.entries(files)) {
    await mkdir(dirname(join(root, name)), { recursive: true })
    await writeFile(join(root, name), randomBytes(size))
  }
}

/** Relative path → SHA-256 of every file under `root`. */
async function digests(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue
    const path = join(entry.parentPath, entry.name)
    out.set(relative(root, path), createHash('sha256').update(await readFile(path)).digest('hex'))
  }
  return out
}

async function sameTree(a: string, b: string): Promise<void> {
  const [x, y] = [await digests(a), await digests(b)]
  const differ = [...new Set([...x.keys(), ...y.keys()])].filter((k) => x.get(k) !== y.get(k))
  if (differ.length > 0 || x.size === 0) throw new Error(`the trees differ in ${differ.length} files (${differ.slice(0, 5).join(', ')}), ${x.size} files`)
}

async function sameFile(a: string, b: string): Promise<void> {
  if (!(await readFile(a)).equals(await readFile(b))) throw new Error(`${b} is not ${a}`)
}

// ---- the cluster ----------------------------------------------------------------------------

interface Node {
  root: string
  child: ChildProcess
}

/** Every node started, so that each is stopped whatever fails, even on the way out. */
const started: Node[] = []
process.once('exit', () => {
  for (const n of started) if (n.child.exitCode === null) n.child.kill('SIGKILL')
})

async function startNode(root: string, extra: string[]): Promise<Node> {
  // Its output is piped through this process, never handed its file descriptors: a node that outlived
  // this script would otherwise hold the caller's pipe open.
  const child = spawn(process.execPath, [BIN, 'serve', '--root', root, '--log-level', 'warn', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout.pipe(process.stdout, { end: false })
  child.stderr.pipe(process.stderr, { end: false })
  started.push({ root, child })
  const deadline = Date.now() + 60_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`dcas serve --root ${root} exited ${child.exitCode}`)
    try {
      // api.json says `starting` until the node is up; then it has its address.
      const api = JSON.parse(await readFile(join(root, 'api.json'), 'utf8')) as { pid: number; starting?: boolean; address?: string }
      if (api.pid === child.pid && api.starting !== true && api.address !== undefined) return { root, child }
    } catch {
      // not yet written
    }
    if (Date.now() > deadline) throw new Error(`dcas serve --root ${root} did not start within a minute`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

async function stopNode(node: Node): Promise<void> {
  if (node.child.exitCode !== null) return
  const exited = new Promise((r) => node.child.once('exit', r))
  node.child.kill('SIGTERM')
  await exited
}

async function startCluster(dir: string): Promise<{ endpoint: Endpoint; nodes: Node[] }> {
  const a = join(dir, 'node-a')
  const b = join(dir, 'node-b')
  await run(process.execPath, [BIN, 'init', '--root', a, '--listen', '127.0.0.1:0', '--http', '127.0.0.1:0'])
  const nodeA = await startNode(a, ['--s3', '127.0.0.1:0'])
  const apiA = JSON.parse(await readFile(join(a, 'api.json'), 'utf8')) as { address: string; s3: Endpoint }
  await run(process.execPath, [BIN, 'init', '--root', b, '--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--join', join(a, 'identity', 'cluster-secret'), '--peer', apiA.address])
  const nodeB = await startNode(b, [])
  // Wait for the two to be connected: every store then goes to both.
  const deadline = Date.now() + 60_000
  for (;;) {
    const status = JSON.parse(await run(process.execPath, [BIN, 'status', '--root', a, '--json'])) as { peers: Array<{ connected: boolean }> }
    if (status.peers.some((p) => p.connected)) break
    if (Date.now() > deadline) throw new Error('the two nodes did not connect within a minute')
    await new Promise((r) => setTimeout(r, 250))
  }
  log(`two-node cluster up; S3 at ${apiA.s3.url}`)
  return { endpoint: apiA.s3, nodes: [nodeA, nodeB] }
}

// ---- the clients ----------------------------------------------------------------------------

type Check = (endpoint: Endpoint, dir: string) => Promise<string>

const awsEnv = (e: Endpoint): Record<string, string> => ({ AWS_ACCESS_KEY_ID: e.accessKeyId, AWS_SECRET_ACCESS_KEY: e.secretAccessKey, AWS_DEFAULT_REGION: e.region, AWS_REGION: e.region, AWS_EC2_METADATA_DISABLED: 'true', AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null' })

const restic: Check = async (e, dir) => {
  const source = join(dir, 'restic-source')
  const files: Record<string, number> = { 'big.bin': 24 * MiB + 5, 'empty.txt': 0, 'dir with space/ünï.txt': 1000 }
  for (let i = 0; i < 40; i++) files[`tree/d${i % 5}/file-${i}.bin`] = Math.floor(Math.random() * 600_000)
  await writeTree(source, files)
  const env = { ...awsEnv(e), RESTIC_PASSWORD: 'restic test password', RESTIC_REPOSITORY: `s3:${e.url}/restic-repo`, RESTIC_CACHE_DIR: join(dir, 'restic-cache') }
  await run('restic', ['init'], { env })
  await run('restic', ['backup', '--host', 'test', source], { env })
  await run('restic', ['check', '--read-data'], { env })
  const target = join(dir, 'restic-restore')
  await run('restic', ['restore', 'latest', '--target', target], { env })
  await sameTree(source, join(target, source))
  return `${(await run('restic', ['version'])).trim()}: init, backup, check --read-data, restore of ${Object.keys(files).length} files`
}

const rclone: Check = async (e, dir) => {
  const source = join(dir, 'rclone-source')
  await writeTree(source, {
    'with space.txt': 100,
    'ünïcödé-文件.bin': 2000,
    'a+b.txt': 10,
    'x&y.txt': 11,
    '100%.txt': 12,
    'dir with space/nested #1.txt': 13,
    'deep/er/still ~ (1).bin': 3 * MiB,
    "quote's.txt": 14,
  })
  const config = join(dir, 'rclone.conf')
  await writeFile(config, `[dcas]\ntype = s3\nprovider = Other\nendpoint = ${e.url}\nregion = ${e.region}\naccess_key_id = ${e.accessKeyId}\nsecret_access_key = ${e.secretAccessKey}\nforce_path_style = true\n`)
  const rc = (...args: string[]): Promise<string> => run('rclone', ['--config', config, '--low-level-retries', '1', '--retries', '1', ...args])
  await rc('mkdir', 'dcas:rclone-bucket')
  await rc('sync', source, 'dcas:rclone-bucket/tree')
  await rc('check', source, 'dcas:rclone-bucket/tree')
  // A change and a removal, synced and checked again.
  await writeFile(join(source, 'a+b.txt'), 'changed')
  await rm(join(source, 'x&y.txt'))
  await rc('sync', source, 'dcas:rclone-bucket/tree')
  await rc('check', source, 'dcas:rclone-bucket/tree')
  const back = join(dir, 'rclone-back')
  await rc('copy', 'dcas:rclone-bucket/tree', back)
  await sameTree(source, back)
  return `${(await run('rclone', ['version'])).split('\n')[0]}: sync and check of odd names, twice, and copy back`
}

/** Every distinct AWS CLI: the one on the PATH and Debian's. */
function awsBinaries(): string[] {
  const found = new Map<string, string>()
  for (const candidate of ['aws', '/usr/bin/aws']) {
    const version = spawnSync(candidate, ['--version'], { encoding: 'utf8' })
    if (version.status === 0) found.set(`${version.stdout}${version.stderr}`.trim().split(' ')[0]!, candidate)
  }
  return [...found.values()]
}

const awsCli =
  (bin: string): Check =>
  async (e, dir) => {
    const version = (await run(bin, ['--version'])).trim().split(' ')[0]!
    const bucket = `aws-${version.replace(/[^0-9]/g, '')}`
    const env = awsEnv(e)
    const aws = (...args: string[]): Promise<string> => run(bin, ['--endpoint-url', e.url, ...args], { env })
    const big = join(dir, `${bucket}-big.bin`)
    await writeFile(big, randomBytes(20 * MiB + 77))
    await aws('s3', 'mb', `s3://${bucket}`)
    await aws('s3', 'cp', big, `s3://${bucket}/dir/big file.bin`) // above 8 MiB: multipart
    const listed = await aws('s3', 'ls', `s3://${bucket}/dir/`)
    if (!listed.includes('big file.bin') || !listed.includes(String(20 * MiB + 77))) throw new Error(`aws s3 ls shows:\n${listed}`)
    const back = join(dir, `${bucket}-back.bin`)
    await aws('s3', 'cp', `s3://${bucket}/dir/big file.bin`, back)
    await sameFile(big, back)
    await aws('s3api', 'copy-object', '--bucket', bucket, '--key', 'copied.bin', '--copy-source', `${bucket}/dir/big file.bin`)
    const head = JSON.parse(await aws('s3api', 'head-object', '--bucket', bucket, '--key', 'copied.bin')) as { ContentLength: number; ETag: string }
    if (head.ContentLength !== 20 * MiB + 77 || !head.ETag.endsWith('-3"')) throw new Error(`the copy's head: ${JSON.stringify(head)}`)
    let conditional = 'no --if-none-match in this version'
    if ((await run(bin, ['s3api', 'put-object', 'help'], { env: { ...env, PAGER: 'cat', AWS_PAGER: '' } })).includes('--if-none-match')) {
      await aws('s3api', 'put-object', '--bucket', bucket, '--key', 'once', '--body', back, '--if-none-match', '*')
      const refused = await run(bin, ['--endpoint-url', e.url, 's3api', 'put-object', '--bucket', bucket, '--key', 'once', '--body', big, '--if-none-match', '*'], { env, expectFailure: true })
      if (!refused.includes('PreconditionFailed')) throw new Error(`a second conditional put failed otherwise:\n${refused}`)
      conditional = 'conditional put refused the second time'
    }
    await aws('s3', 'rm', `s3://${bucket}`, '--recursive')
    await aws('s3', 'rb', `s3://${bucket}`)
    return `${version} (${bin}): multipart cp both ways, ls, s3api copy-object, ${conditional}, rm, rb`
  }

const s3cmd: Check = async (e, dir) => {
  const host = new URL(e.url).host
  const config = join(dir, 's3cmd.cfg')
  await writeFile(config, `[default]\naccess_key = ${e.accessKeyId}\nsecret_key = ${e.secretAccessKey}\nhost_base = ${host}\nhost_bucket = ${host}\nuse_https = False\nsignature_v2 = False\nbucket_location = ${e.region}\ncheck_ssl_certificate = False\n`)
  const s = (...args: string[]): Promise<string> => run('s3cmd', ['-c', config, ...args])
  const file = join(dir, 's3cmd file.bin')
  await writeFile(file, randomBytes(3 * MiB + 3))
  await s('mb', 's3://s3cmd-bucket')
  await s('put', file, 's3://s3cmd-bucket/some dir/s3cmd file.bin')
  const listed = await s('ls', '--recursive', 's3://s3cmd-bucket')
  if (!listed.includes('some dir/s3cmd file.bin')) throw new Error(`s3cmd ls shows:\n${listed}`)
  const back = join(dir, 's3cmd-back.bin')
  await s('get', '--force', 's3://s3cmd-bucket/some dir/s3cmd file.bin', back)
  await sameFile(file, back)
  await s('del', 's3://s3cmd-bucket/some dir/s3cmd file.bin')
  if ((await s('ls', '--recursive', 's3://s3cmd-bucket')).includes('s3cmd file.bin')) throw new Error('s3cmd del left the object')
  await s('rb', 's3://s3cmd-bucket')
  return `${(await run('s3cmd', ['--version'])).trim()}: mb, put, ls, get, del, rb`
}

const BOTO3 = `
import boto3, botocore, hashlib, os, sys
from botocore.config import Config
from boto3.s3.transfer import TransferConfig
url, key_id, secret, region, path = sys.argv[1:6]
s3 = boto3.client('s3', endpoint_url=url, aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=region, config=Config(s3={'addressing_style': 'path'}, retries={'max_attempts': 1}))
s3.create_bucket(Bucket='boto3-bucket')
body = os.urandom(300000)
s3.put_object(Bucket='boto3-bucket', Key='small object', Body=body)
got = s3.get_object(Bucket='boto3-bucket', Key='small object', ChecksumMode='ENABLED')
assert got['Body'].read() == body, 'small object differs'
s3.upload_file(path, 'boto3-bucket', 'big/object.bin', Config=TransferConfig(multipart_threshold=8 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024))
s3.download_file('boto3-bucket', 'big/object.bin', path + '.back')
assert open(path, 'rb').read() == open(path + '.back', 'rb').read(), 'multipart object differs'
keys = [o['Key'] for o in s3.list_objects_v2(Bucket='boto3-bucket')['Contents']]
assert keys == ['big/object.bin', 'small object'], keys
deleted = s3.delete_objects(Bucket='boto3-bucket', Delete={'Objects': [{'Key': k} for k in keys]})
assert len(deleted['Deleted']) == 2, deleted
s3.delete_bucket(Bucket='boto3-bucket')
print('boto3 %s (botocore %s)' % (boto3.__version__, botocore.__version__))
`

const boto3: Check = async (e, dir) => {
  if (spawnSync('python3', ['-c', 'import boto3'], { stdio: 'ignore' }).status !== 0) {
    log('boto3 is absent: installing python3-boto3 with apt-get (Debian\'s is older than the default trailer checksums)')
    if (spawnSync('apt-get', ['install', '-y', '-qq', 'python3-boto3'], { stdio: 'inherit', timeout: 600_000 }).status !== 0) throw new Error('boto3 is absent and could not be installed')
  }
  const file = join(dir, 'boto3.bin')
  await writeFile(file, randomBytes(17 * MiB + 1))
  const out = await run('python3', ['-c', BOTO3, e.url, e.accessKeyId, e.secretAccessKey, e.region, file])
  // Over plain HTTP boto3 sends its default CRC32 as a header beside a signed payload (its trailer form is for HTTPS).
  return `${out.trim().split('\n').at(-1)}: put with its default CRC32 and Expect: 100-continue, get with checksum mode, multipart upload_file, download, list, delete_objects`
}

// ---- main -----------------------------------------------------------------------------------

async function main(): Promise<number> {
  const dir = await mkdtemp(join(realpathSync(tmpdir()), 'dcas-s3-clients-'))
  let nodes: Node[] = []
  const watchdog = setTimeout(() => {
    log(`the run took longer than ${RUN_TIMEOUT_MS / 60_000} minutes: stopping`)
    for (const n of started) n.child.kill('SIGKILL')
    process.exit(1)
  }, RUN_TIMEOUT_MS)
  watchdog.unref()
  try {
    ensureClients()
    let endpoint: Endpoint
    const url = arg('--endpoint')
    if (url !== undefined) {
      endpoint = { url, region: arg('--region') ?? 'us-east-1', accessKeyId: arg('--access-key-id') ?? '', secretAccessKey: arg('--secret-access-key') ?? '' }
    } else {
      if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run pnpm build first`)
      ;({ endpoint, nodes } = await startCluster(dir))
    }
    const checks: Array<[string, Check]> = [['restic', restic], ['rclone', rclone], ...awsBinaries().map((b): [string, Check] => [`aws (${b})`, awsCli(b)]), ['s3cmd', s3cmd], ['boto3', boto3]]
    let failed = 0
    for (const [name, check] of checks) {
      const started = performance.now()
      try {
        const what = await check(endpoint, dir)
        log(`ok   ${name}: ${what} (${((performance.now() - started) / 1000).toFixed(1)} s)`)
      } catch (err) {
        failed++
        log(`FAIL ${name}: ${err instanceof Error ? err.message : String(err)}`)
      }
    }
    if (nodes.length > 0) {
      // Both nodes hold every object: the owner's replicas on the peer.
      const peerUsage = await stat(join(nodes[1]!.root, 'replicas')).then(() => true, () => false)
      if (!peerUsage) {
        failed++
        log('FAIL cluster: the second node holds no replicas')
      }
    }
    log(`${checks.length - failed} of ${checks.length} clients passed`)
    return failed === 0 ? 0 : 1
  } finally {
    for (const n of [...started].reverse()) await stopNode(n)
    await rm(dir, { recursive: true, force: true })
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(`FAIL ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
    process.exit(1)
  },
)
