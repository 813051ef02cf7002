// Small files written whole: a temporary file (mode 0600, fsynced) renamed or linked into
// place, so a reader never sees half a file and a crash never leaves one.
import { randomBytes } from 'node:crypto'
import { chmod, link, open, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

/**
 * Writes `content` to `path` with mode 0600. With `exclusive`, fails with `EEXIST`
 * rather than replace a file already there.
 */
export async function writeFileAtomic(path: string, content: string, options: { exclusive?: boolean } = {}): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`)
  const handle = await open(tmp, 'wx', 0o600)
  try {
    await handle.writeFile(content)
    await handle.sync()
  } finally {
    await handle.close()
  }
  try {
    await chmod(tmp, 0o600) // whatever the umask
    if (options.exclusive === true) await link(tmp, path)
    else await rename(tmp, path)
  } finally {
    await unlink(tmp).catch(() => {})
  }
}
