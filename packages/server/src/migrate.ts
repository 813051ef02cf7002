// Upgrades a data directory written by an earlier release, once per step, when the server starts:
// the table of this node's refIds (for catch-up in refId order) is built, and manifests written before
// they carried the owner's MAC are sealed again in the current format (same version, same chunks), so
// that peers get copies the owner can vouch for at the next catch-up.
import type { Catalogue } from './catalogue.js'
import type { IndexTable } from '@dcas/store'
import { isLocalMiss, metaOf, type LocalStore } from './local.js'
import type { KeyLocks } from './locks.js'
import type { Logger } from './logger.js'
import { decodeManifest } from './manifest.js'

const FORMAT_KEY = 'manifests'
const CURRENT = 2

/** Runs the steps not done yet in this data directory. */
export async function migrate(local: LocalStore, catalogue: Catalogue, keyLocks: KeyLocks, macKey: Uint8Array, log: Logger): Promise<void> {
  const formats = local.index.table<number>('formats')
  if (formats.get(REF_IDS_KEY) === undefined) await indexRefIds(local, catalogue, formats)
  if ((formats.get(FORMAT_KEY) ?? 1) < CURRENT) await resealManifests(local, catalogue, keyLocks, macKey, log, formats)
}

const REF_IDS_KEY = 'ref-ids'

/** Fills the refId table from the live refs and the tombstones. */
async function indexRefIds(local: LocalStore, catalogue: Catalogue, formats: IndexTable<number>): Promise<void> {
  const { index, tables } = local
  const entries: Array<[string, string]> = []
  for (const [key, record] of index.refs.entries()) entries.push([metaOf(record).refId, key])
  for (const [key] of index.tombstones.entries()) entries.push([catalogue.refIdOf(key), key])
  for (let at = 0; at < entries.length; at += 10_000) {
    await index.transaction((tx) => {
      for (const [refId, key] of entries.slice(at, at + 10_000)) tx.put(tables.refIds, refId, key)
    })
  }
  await index.transaction((tx) => tx.put(formats, REF_IDS_KEY, 1))
}

/** Seals every version 1 manifest again as version 2. */
async function resealManifests(local: LocalStore, catalogue: Catalogue, keyLocks: KeyLocks, macKey: Uint8Array, log: Logger, formats: IndexTable<number>): Promise<void> {
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
