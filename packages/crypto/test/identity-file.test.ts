// Identity files in the age key-file format (what `age-keygen` writes and `age -d -i FILE` reads).
import * as age from 'age-encryption'
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  decryptBytes,
  encryptBytes,
  formatIdentityFile,
  generateIdentity,
  identityToRecipient,
  loadOrCreateIdentityFile,
  parseIdentityFile,
  readIdentityFile,
  writeIdentityFile,
} from '../src/index.js'

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dcas-crypto-identity-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o777

describe('identity files', () => {
  it('formats a file as age-keygen does: created and public key comments, then the identity', async () => {
    const identity = await generateIdentity()
    const text = formatIdentityFile(identity, { created: new Date('2026-01-02T03:04:05.678Z') })
    expect(text).toBe(`# created: 2026-01-02T03:04:05Z\n# public key: ${await identityToRecipient(identity)}\n${identity}\n`)
  })

  it('parses every identity, skipping comments, blank lines and CRLF endings', async () => {
    const [a, b] = await Promise.all([generateIdentity(), age.generateIdentity()])
    const text = `# a comment\r\n\r\n${a}\r\n   \n# public key: age1whatever\n  ${b}  \n`
    expect(parseIdentityFile(text)).toEqual([a, b])
  })

  it('rejects a malformed line with ERR_INVALID_IDENTITY naming the line, never its content', async () => {
    const identity = await generateIdentity()
    const broken = identity.slice(0, -1) + (identity.endsWith('Q') ? 'P' : 'Q')
    const err = (() => {
      try {
        parseIdentityFile(`# key\n${identity}\n${broken}\n`)
      } catch (e) {
        return e as Error & { code: string }
      }
    })()
    expect(err?.code).toBe('ERR_INVALID_IDENTITY')
    expect(err?.message).toContain('line 3')
    expect(err?.message).not.toContain(broken.slice(20))
  })

  it('rejects a file without any identity with ERR_INVALID_IDENTITY', () => {
    expect(() => parseIdentityFile('# only a comment\n\n')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_IDENTITY' }))
  })

  it('refuses a passphrase-encrypted identity file with ERR_UNSUPPORTED', () => {
    expect(() => parseIdentityFile('age-encryption.org/v1\n-> scrypt abc 18\n')).toThrow(
      expect.objectContaining({ code: 'ERR_UNSUPPORTED' }),
    )
    expect(() => parseIdentityFile('-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n')).toThrow(
      expect.objectContaining({ code: 'ERR_UNSUPPORTED' }),
    )
  })

  it('refuses a post-quantum identity line with ERR_UNSUPPORTED', () => {
    expect(() => parseIdentityFile('AGE-SECRET-KEY-PQ-1QQQQ\n')).toThrow(expect.objectContaining({ code: 'ERR_UNSUPPORTED' }))
  })

  it('writes a file with mode 0600 that reads back to the same identity', async () => {
    const identity = await generateIdentity()
    const path = join(dir, 'keys.txt')
    await writeIdentityFile(path, identity)
    expect(await mode(path)).toBe(0o600)
    expect(await readIdentityFile(path)).toEqual([identity])
    expect(await readdir(dir)).toEqual(['keys.txt'])
  })

  it('reads a file written by age-encryption and decrypts with it', async () => {
    const identity = await age.generateIdentity()
    const path = join(dir, 'theirs.txt')
    await writeFile(path, `# created by age-encryption\n# public key: ${await age.identityToRecipient(identity)}\n${identity}\n`)
    const identities = await readIdentityFile(path)
    const file = await encryptBytes('shared key file', [await age.identityToRecipient(identity)])
    expect(Buffer.from(await decryptBytes(file, identities)).toString()).toBe('shared key file')
  })

  it('never replaces an existing file: ERR_IDENTITY_FILE_EXISTS, the old file intact, no temporary left', async () => {
    const [first, second] = await Promise.all([generateIdentity(), generateIdentity()])
    const path = join(dir, 'keys.txt')
    await writeIdentityFile(path, first)
    const before = await readFile(path, 'utf8')
    await expect(writeIdentityFile(path, second)).rejects.toMatchObject({ code: 'ERR_IDENTITY_FILE_EXISTS' })
    expect(await readFile(path, 'utf8')).toBe(before)
    expect(await readdir(dir)).toEqual(['keys.txt'])
  })

  it('replaces an existing file when asked to overwrite', async () => {
    const [first, second] = await Promise.all([generateIdentity(), generateIdentity()])
    const path = join(dir, 'keys.txt')
    await writeIdentityFile(path, first)
    await writeIdentityFile(path, second, { overwrite: true })
    expect(await readIdentityFile(path)).toEqual([second])
    expect(await mode(path)).toBe(0o600)
    expect(await readdir(dir)).toEqual(['keys.txt'])
  })

  it('passes a missing file through as ENOENT', async () => {
    await expect(readIdentityFile(join(dir, 'missing.txt'))).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('loadOrCreateIdentityFile creates the file (mode 0600, parents 0700) once, then loads it', async () => {
    const path = join(dir, 'root', 'identity', 'age-identity.txt')
    const made = await loadOrCreateIdentityFile(path)
    expect(made.created).toBe(true)
    expect(made.identities).toHaveLength(1)
    expect(made.recipient).toBe(await identityToRecipient(made.identities[0]!))
    expect(await mode(path)).toBe(0o600)
    expect(await mode(join(dir, 'root', 'identity'))).toBe(0o700)

    const loaded = await loadOrCreateIdentityFile(path)
    expect(loaded).toEqual({ ...made, created: false })
  })

  it('loadOrCreateIdentityFile called concurrently settles on one identity', async () => {
    const path = join(dir, 'age-identity.txt')
    const results = await Promise.all(Array.from({ length: 6 }, () => loadOrCreateIdentityFile(path)))
    expect(results.filter((r) => r.created)).toHaveLength(1)
    expect(new Set(results.map((r) => r.identities[0])).size).toBe(1)
    expect(await readIdentityFile(path)).toEqual(results[0]!.identities)
    expect(await readdir(dir)).toEqual(['age-identity.txt'])
  })

  it('loadOrCreateIdentityFile fails on a corrupt file rather than replacing it', async () => {
    const path = join(dir, 'age-identity.txt')
    await writeFile(path, 'not a key\n')
    await expect(loadOrCreateIdentityFile(path)).rejects.toMatchObject({ code: 'ERR_INVALID_IDENTITY' })
    expect(await readFile(path, 'utf8')).toBe('not a key\n')
  })
})
