import { readFile, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { identityToRecipient, readIdentityFile } from '@dcas/crypto'
import { nodeIdFromCertificate } from '@dcas/p2p'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { runCli } from '../src/index.js'
import { capture, filesUnder, tempDir } from './helpers.js'

let dir: { path: string; cleanup: () => Promise<void> }

beforeEach(async () => {
  dir = await tempDir()
})

afterEach(async () => {
  await dir.cleanup()
})

/** Runs the command line in this process; resolves to the exit code and what it printed. */
async function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = capture()
  const stderr = capture()
  const code = await runCli(args, { stdout, stderr, env })
  return { code, stdout: stdout.text(), stderr: stderr.text() }
}

const snapshot = async (root: string): Promise<Map<string, string>> => {
  const files = await filesUnder(root)
  return new Map(await Promise.all(files.map(async (f) => [f, await readFile(f, 'utf8')] as const)))
}

describe('dcas init', () => {
  it('prints the node id and age recipient of the identity it writes, with mode 0600 files', async () => {
    const root = join(dir.path, 'a')
    const { code, stdout } = await run(['init', '--root', root])
    expect(code).toBe(0)
    const nodeId = nodeIdFromCertificate(await readFile(join(root, 'identity', 'cert.pem'), 'utf8'))
    const [identity] = await readIdentityFile(join(root, 'identity', 'age-identity.txt'))
    expect(stdout).toContain(`node id         ${nodeId}`)
    expect(stdout).toContain(`age recipient   ${await identityToRecipient(identity!)}`)
    for (const f of ['config.json', 'identity/cluster-secret', 'identity/age-identity.txt', 'identity/key.pem', 'identity/s3-credentials.json']) {
      expect((await stat(join(root, f))).mode & 0o777, f).toBe(0o600)
    }
    expect((await readFile(join(root, 'identity', 'cluster-secret'), 'utf8')).trim()).toMatch(/^[A-Za-z0-9_-]{43}$/)
  })

  it('refuses to initialise a directory that already holds a node, and changes nothing', async () => {
    const root = join(dir.path, 'a')
    expect((await run(['init', '--root', root])).code).toBe(0)
    const before = await snapshot(root)
    const again = await run(['init', '--root', root, '--cluster-secret', 'another secret of enough length'])
    expect(again.code).toBe(3)
    expect(again.stderr).toContain('already holds a dcas node')
    expect(again.stderr).toContain('nothing was changed')
    expect(await snapshot(root)).toEqual(before)
  })

  it('refuses when only the identity survives (config.json lost), rather than make a new identity', async () => {
    const root = join(dir.path, 'a')
    await run(['init', '--root', root])
    const before = await readFile(join(root, 'identity', 'age-identity.txt'), 'utf8')
    await rm(join(root, 'config.json'))
    expect((await run(['init', '--root', root])).code).toBe(3)
    expect(await readFile(join(root, 'identity', 'age-identity.txt'), 'utf8')).toBe(before)
  })

  it('saves a given cluster secret, and a node joining from that file shares it', async () => {
    const a = join(dir.path, 'a')
    const b = join(dir.path, 'b')
    const secret = 'a secret every node of the cluster shares'
    expect((await run(['init', '--root', a, '--cluster-secret', secret])).code).toBe(0)
    const joined = await run(['init', '--root', b, '--join', join(a, 'identity', 'cluster-secret')])
    expect(joined.code).toBe(0)
    expect(joined.stdout).toContain('cluster secret  joined')
    expect((await readFile(join(b, 'identity', 'cluster-secret'), 'utf8')).trim()).toBe(secret)
  })

  it('takes the secret and the peers from a JSON join file', async () => {
    const file = join(dir.path, 'join.json')
    await writeFile(file, JSON.stringify({ clusterSecret: 'sixteen or more characters', peers: ['10.0.0.1:7420'] }))
    const root = join(dir.path, 'b')
    expect((await run(['init', '--root', root, '--join', file, '--peer', '10.0.0.2:7420'])).code).toBe(0)
    const config = JSON.parse(await readFile(join(root, 'config.json'), 'utf8')) as { peers: string[] }
    expect(config.peers).toEqual(['10.0.0.2:7420', '10.0.0.1:7420'])
    expect((await readFile(join(root, 'identity', 'cluster-secret'), 'utf8')).trim()).toBe('sixteen or more characters')
  })

  it.each([
    [['--cluster-secret', 'short'], 'at least 16'],
    [['--cluster-secret', 'a long enough secret', '--join', 'x'], 'not both'],
    [['--http', '0.0.0.0:8080'], '127.0.0.1 only'],
    [['--listen', 'nowhere'], 'HOST:PORT'],
    [['--join', '/no/such/file'], 'cannot read the join file'],
  ])('exits 2 on bad input (%j) and creates nothing', async (args, message) => {
    const root = join(dir.path, 'x')
    const { code, stderr } = await run(['init', '--root', root, ...args])
    expect(code).toBe(2)
    expect(stderr).toContain(message)
    expect(await filesUnder(root)).toEqual([])
  })

  it('reads the directory from DCAS_ROOT', async () => {
    const root = join(dir.path, 'env')
    expect((await run(['init'], { DCAS_ROOT: root })).code).toBe(0)
    expect(await filesUnder(join(root, 'identity'))).toHaveLength(5) // TLS key and certificate, age identity, cluster secret, S3 access key
  })

  it('uses $XDG_DATA_HOME/dcas when neither --root nor DCAS_ROOT is given, and says so', async () => {
    const data = join(dir.path, 'xdg')
    const made = await run(['init'], { XDG_DATA_HOME: data, HOME: join(dir.path, 'home') })
    expect(made.code).toBe(0)
    expect(made.stdout).toContain(`initialised a dcas node in ${join(data, 'dcas')} (the default data directory`)
    expect(await filesUnder(join(data, 'dcas', 'identity'))).toHaveLength(5)
    const status = await run(['status'], { XDG_DATA_HOME: data })
    expect(status.code).toBe(4)
    expect(status.stderr).toContain(`(${join(data, 'dcas')} is the default data directory, as no --root was given and DCAS_ROOT is not set)`)
  })

  it('uses ~/.local/share/dcas when XDG_DATA_HOME is not set (or not an absolute path)', async () => {
    const home = join(dir.path, 'home')
    const envs: Array<Record<string, string>> = [{ HOME: home }, { HOME: home, XDG_DATA_HOME: 'relative/path' }]
    for (const env of envs) {
      const result = await run(['ls'], env)
      expect(result.code).toBe(3)
      expect(result.stderr).toContain(`there is no dcas node in ${join(home, '.local', 'share', 'dcas')}`)
      expect(result.stderr).toContain('create one with: dcas init')
    }
    const help = await run(['ls', '--help'], { HOME: home })
    expect(help.stdout.replace(/\s+/g, ' ')).toContain(`(default: $DCAS_ROOT, else ${join(home, '.local', 'share', 'dcas')})`)
  })
})

describe('dcas identity export', () => {
  it('prints the age identity file, and writes it to a new file with mode 0600 but never over one', async () => {
    const root = join(dir.path, 'a')
    await run(['init', '--root', root])
    const text = await readFile(join(root, 'identity', 'age-identity.txt'), 'utf8')
    const printed = await run(['identity', 'export', '--root', root])
    expect(printed.code).toBe(0)
    expect(printed.stdout).toBe(text)
    expect(printed.stdout).toMatch(/^AGE-SECRET-KEY-1[0-9A-Z]+$/m)

    const out = join(dir.path, 'backup.txt')
    expect((await run(['identity', 'export', '--root', root, '-o', out])).code).toBe(0)
    expect(await readFile(out, 'utf8')).toBe(text)
    expect((await stat(out)).mode & 0o777).toBe(0o600)
    const again = await run(['identity', 'export', '--root', root, '-o', out])
    expect(again.code).toBe(2)
    expect(again.stderr).toContain('exists; nothing was written')
  })

  it('exits 3 on a directory that holds no node', async () => {
    const { code, stderr } = await run(['identity', 'export', '--root', join(dir.path, 'empty')])
    expect(code).toBe(3)
    expect(stderr).toContain('dcas init --root')
  })
})

describe('commands without a node', () => {
  it('serve exits 3 and says to run dcas init', async () => {
    const root = join(dir.path, 'none')
    const { code, stderr } = await run(['serve', '--root', root])
    expect(code).toBe(3)
    expect(stderr).toContain(`${root} is not a dcas node`)
    expect(stderr).toContain(`run dcas init --root ${root} first`)
  })

  it('serve exits 3 naming the field of an invalid config.json', async () => {
    const root = join(dir.path, 'a')
    await run(['init', '--root', root])
    await writeFile(join(root, 'config.json'), JSON.stringify({ listen: '127.0.0.1:0', peers: 'not a list' }))
    const { code, stderr } = await run(['serve', '--root', root])
    expect(code).toBe(3)
    expect(stderr).toContain('"peers" must be a list')
  })

  it('s3 credentials exits 3 and says to run dcas init', async () => {
    const root = join(dir.path, 'none')
    const { code, stderr } = await run(['s3', 'credentials', '--root', root])
    expect(code).toBe(3)
    expect(stderr).toContain(`run dcas init --root ${root} first`)
  })

  it('get -o refuses a directory, or a file in a directory that does not exist, before reading anything', async () => {
    const root = join(dir.path, 'a')
    await run(['init', '--root', root])
    const intoDir = await run(['get', 'k', '-o', dir.path, '--root', root])
    expect(intoDir.code).toBe(2)
    expect(intoDir.stderr).toContain(`dcas: ${dir.path} is a directory`)
    const missing = join(dir.path, 'nodir', 'x.txt')
    const noParent = await run(['get', 'k', '-o', missing, '--root', root])
    expect(noParent.code).toBe(2)
    expect(noParent.stderr).toContain(`dcas: cannot write ${missing}: ${join(dir.path, 'nodir')} is not a directory`)
    expect(noParent.stderr).not.toContain('.part')
  })

  it('ls --limit says it counts keys', async () => {
    const { code, stderr } = await run(['ls', '--limit', 'abc', '--root', join(dir.path, 'a')])
    expect(code).toBe(2)
    expect(stderr).toContain('--limit must be a whole number of keys, got "abc"')
  })

  it.each([['put', 'k', '-'], ['get', 'k'], ['rm', 'k'], ['ls'], ['stat', 'k'], ['status'], ['scrub']])('%s exits 4 and says to start the node when none runs', async (...args) => {
    const root = join(dir.path, 'a')
    await run(['init', '--root', root])
    const { code, stderr } = await run([...args, '--root', root])
    expect(code).toBe(4)
    expect(stderr).toContain('no dcas node is running')
    expect(stderr).toContain(`dcas serve --root ${root}`)
  })
})
