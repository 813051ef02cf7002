// Upgrades a data directory written by an earlier release, once, when the server starts: manifests
// written before they carried the owner's MAC are sealed again in the current format (same version,
// same chunks), so that peers get copies the owner can vouch for at the next catch-up.
import type { Catalogue } from './catalogue.js'
import { isLocalMiss, type LocalStore } from './local.js'
import type { KeyLocks } from './locks.js'
import type { Logger } from './logger.js'
import { decodeManifest } from './manifest.js'

const FORMAT_KEY = 'manifests'
const CURRENT = 2

/** Seals every version 1 manifest again as version 2 (a no-op once done). */
export async function migrate(local: LocalStore, catalogue: Catalogue, keyLocks: KeyLocks, macKey: Uint8Array, log: Logger): Promise<void> {
  const formats = local.index.table<number>('formats')
  if ((formats.get(FORMAT_KEY) ?? 1) >= CURRENT) return
  let resealed = 0
  for (const [key] of [...local.index.refs.entries()]) {
    await keyLocks.run(key, async (held) => {
      const record = local.index.refs.get(key)
      if (record === undefined) return
      let bytes: Buffer
      try {
        bytes = await local.read(record.manifestId)
      } catch (err) {
        // A lost manifest is healed from peers by its id; it is sealed anew when its key is next written.
        if (isLocalMiss(err)) return
        throw err
      }
      const { manifest, authenticated } = decodeManifest(bytes, macKey)
      if (authenticated) return
      await catalogue.reseal(held, record, manifest)
      resealed++
    })
  }
  await local.index.transaction((tx) => tx.put(formats, FORMAT_KEY, CURRENT))
  if (resealed > 0) log.info({ resealed }, "sealed manifests written by an earlier release with this owner's MAC")
}
