// Identity files in the age CLI key-file format, shared with `age -d -i FILE` and `age-keygen`.
import { randomBytes } from 'node:crypto'
import { link, mkdir, open, readFile, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { IdentityFileExistsError, InvalidIdentityError, UnsupportedError } from './errors.js'
import { newIdentityString, parseIdentity, recipientOf } from './keys.js'
import { throwIfAborted } from './reader.js'
import type { AbortOptions, WriteIdentityFileOptions } from './types.js'

/**
 * Reads the identities of an identity file's text: one `AGE-SECRET-KEY-1…` per
 * line; empty lines and lines starting with `#` are ignored.
 */
export function parseIdentityFile(text: string): string[] {
  if (text.startsWith('age-encryption.org/') || text.includes('-----BEGIN AGE ENCRYPTED FILE-----')) {
    throw new UnsupportedError('encrypted (passphrase-protected) identity files are not supported')
  }
  const identities: string[] = []
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim()
    if (line === '' || line.startsWith('#')) continue
    try {
      parseIdentity(line)
    } catch (cause) {
      if (cause instanceof UnsupportedError) throw new UnsupportedError(`identity file line ${i + 1}: ${cause.message}`, { cause })
      throw new InvalidIdentityError(`identity file line ${i + 1}: not an AGE-SECRET-KEY-1… identity`, { cause })
    }
    identities.push(line)
  }
  if (identities.length === 0) throw new InvalidIdentityError('the identity file holds no identity')
  return identities
}

/** The text of an identity file for `identity`, as `age-keygen` writes it (with `# created:` and `# public key:`). */
export function formatIdentityFile(identity: string, options: { created?: Date } = {}): string {
  const recipient = recipientOf(identity)
  const created = (options.created ?? new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z')
  return `# created: ${created}\n# public key: ${recipient}\n${identity}\n`
}

function asAborted(err: unknown, signal: AbortSignal | undefined): unknown {
  if (signal?.aborted === true) {
    try {
      throwIfAborted(signal)
    } catch (aborted) {
      return aborted
    }
  }
  return err
}

/** Reads and parses an identity file. File-system errors (such as `ENOENT`) pass through unchanged. */
export async function readIdentityFile(path: string, options: AbortOptions = {}): Promise<string[]> {
  throwIfAborted(options.signal)
  let text: string
  try {
    text = await readFile(path, { encoding: 'utf8', signal: options.signal })
  } catch (err) {
    throw asAborted(err, options.signal)
  }
  return parseIdentityFile(text)
}

/**
 * Writes `identity` to an identity file with mode 0600, atomically (temporary
 * file, fsync, link or rename, directory fsync). Never replaces an existing file
 * unless `options.overwrite`: losing an identity loses every replica made with it.
 */
export async function writeIdentityFile(path: string, identity: string, options: WriteIdentityFileOptions = {}): Promise<void> {
  const { signal } = options
  throwIfAborted(signal)
  const text = formatIdentityFile(identity, options.created === undefined ? {} : { created: options.created })
  const dir = dirname(path)
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`)
  let linked = false
  try {
    const file = await open(tmp, 'wx', 0o600)
    try {
      await file.writeFile(text, { encoding: 'utf8', signal })
      await file.sync()
    } finally {
      await file.close()
    }
    throwIfAborted(signal)
    if (options.overwrite === true) {
      await rename(tmp, path)
      linked = true
    } else {
      try {
        await link(tmp, path)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new IdentityFileExistsError(`an identity file already exists at ${path}`, { cause: err })
        }
        throw err
      }
    }
    const handle = await open(dir, 'r')
    try {
      await handle.sync()
    } finally {
      await handle.close()
    }
  } catch (err) {
    throw asAborted(err, signal)
  } finally {
    if (!linked || options.overwrite !== true) await unlink(tmp).catch(() => {})
  }
}

/** What {@link loadOrCreateIdentityFile} found or made. */
export interface IdentityFileContents {
  /** Every identity in the file, in order. */
  identities: string[]
  /** The `age1…` recipient of the first identity: the one to encrypt to. */
  recipient: string
  /** `true` when the file did not exist and a new identity was written. */
  created: boolean
}

/**
 * Reads the identity file at `path`, or, when there is none, generates an
 * identity and writes it there (mode 0600). Safe against a concurrent creator:
 * whoever links the file first wins and the other reads it.
 */
export async function loadOrCreateIdentityFile(path: string, options: AbortOptions = {}): Promise<IdentityFileContents> {
  throwIfAborted(options.signal)
  for (;;) {
    try {
      const identities = await readIdentityFile(path, options)
      return { identities, recipient: recipientOf(identities[0]!), created: false }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    const identity = newIdentityString()
    try {
      await writeIdentityFile(path, identity, options)
      return { identities: [identity], recipient: recipientOf(identity), created: true }
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'ERR_IDENTITY_FILE_EXISTS') throw err
    }
  }
}
