// `dcas serve --s3`: the S3 gateway beside the node, its access key from `dcas init`, its entry in
// api.json, and `dcas s3 credentials`. (The gateway itself is tested in @dcas/s3; the real clients
// run against `dcas serve --s3` in `pnpm test:s3-clients`.)
import { readFile, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { initNode } from '../src/index.js'
import { dcas, serve, stopAll, tempDir } from './helpers.js'

let dir: { path: string; cleanup: () => Promise<void> }

beforeEach(async () => {
  dir = await tempDir()
})

afterEach(async () => {
  await stopAll()
  await dir.cleanup()
})

describe('dcas serve --s3', () => {
  it('serves S3 with the access key dcas init made, written to api.json and printed by dcas s3 credentials', async () => {
    const root = join(dir.path, 'a')
    const init = await initNode({ root, listen: '127.0.0.1:0', http: '127.0.0.1:0', writeQuorum: 0 })
    expect((await stat(init.files.s3Credentials)).mode & 0o777).toBe(0o600)
    const key = JSON.parse(await readFile(init.files.s3Credentials, 'utf8')) as { accessKeyId: string; secretAccessKey: string }
    expect(key.accessKeyId).toMatch(/^DC[A-Z2-7]{18}$/)
    expect(key.secretAccessKey).toMatch(/^[A-Za-z0-9]{40}$/)

    const node = await serve(root, ['--s3', '127.0.0.1:0'])
    expect(node.api.s3).toEqual({ url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/) as string, region: 'us-east-1', ...key })
    expect(node.lines.find((l) => l.msg === 'ready')).toMatchObject({ s3: node.api.s3?.url })
    // An unsigned request gets S3's XML error from the gateway.
    const res = await fetch(`${node.api.s3!.url}/`)
    expect(res.status).toBe(403)
    expect(await res.text()).toContain('<Code>AccessDenied</Code>')

    const printed = await dcas(['s3', 'credentials', '--root', root])
    expect(printed.code).toBe(0)
    expect(printed.stdout).toContain(`restic -r s3:${node.api.s3!.url}/backups init`)
    expect(printed.stdout).toContain(`aws --endpoint-url ${node.api.s3!.url} s3 mb s3://my-bucket`)
    expect(printed.stdout).toContain(`access_key_id = ${key.accessKeyId}`)
    const json = JSON.parse((await dcas(['s3', 'credentials', '--root', root, '--json'])).stdout) as Record<string, unknown>
    expect(json).toEqual({ ...node.api.s3, running: true })
  })

  it('makes an access key for a node initialised without one, and says when the gateway is not running', async () => {
    const root = join(dir.path, 'old')
    const init = await initNode({ root, listen: '127.0.0.1:0', http: '127.0.0.1:0' })
    await rm(init.files.s3Credentials)
    const none = await dcas(['s3', 'credentials', '--root', root])
    expect(none.code).toBe(2)
    expect(none.stderr).toContain('--s3 127.0.0.1:9000 makes one')
    const node = await serve(root, ['--s3', '127.0.0.1:0'])
    expect(node.api.s3?.accessKeyId).toMatch(/^DC/)
    await node.stop()
    const stopped = await dcas(['s3', 'credentials', '--root', root])
    expect(stopped.code).toBe(0)
    expect(stopped.stdout).toContain(`access key id      ${node.api.s3!.accessKeyId}`)
    expect(stopped.stderr).toContain('the S3 gateway is not running')
  })

  it('exits 4 naming the address when the S3 port is taken', async () => {
    const a = join(dir.path, 'a')
    const b = join(dir.path, 'b')
    await initNode({ root: a, listen: '127.0.0.1:0', http: '127.0.0.1:0' })
    await initNode({ root: b, listen: '127.0.0.1:0', http: '127.0.0.1:0' })
    const first = await serve(a, ['--s3', '127.0.0.1:0'])
    const address = first.api.s3!.url.replace('http://', '')
    const second = await dcas(['serve', '--root', b, '--s3', address])
    expect(second.code).toBe(4)
    expect(second.stderr).toContain(`cannot serve S3 on ${address}`)
    expect(await stat(join(b, 'api.json')).catch(() => undefined)).toBeUndefined()
  })
})
