import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { hashBlob, openBlobStore, openIndex } from '@dcas/store'

const dataDir = await mkdtemp(join(tmpdir(), 'dcas-example-'))
const blobs = await openBlobStore({ root: dataDir }) // blobs in dataDir/blobs/ab/cd/<id>
const index = await openIndex({ path: join(dataDir, 'index') })

try {
  // A blob is named by the SHA-256 of its bytes.
  const { id, size } = await blobs.put('hello, content-addressed world')
  console.log(`stored ${size} bytes as ${id.slice(0, 16)}…`)

  // A ref and its blob's refcount change together, or not at all.
  await index.transaction((tx) => {
    tx.put(index.refs, 'greetings/en', { manifestId: id, size, sha256: id, version: 1, updatedAt: Date.now() })
    tx.add(index.refcounts, id, 1)
  })

  // Reads are verified against the id before a byte is returned; ranges too.
  let text = ''
  for await (const bytes of blobs.get(id, { offset: 7, length: 17 })) text += Buffer.from(bytes).toString()
  console.log(`range: ${text}`)

  for (const [key, ref] of index.refs.entries({ prefix: 'greetings/' })) {
    console.log(`${key} -> ${ref.manifestId.slice(0, 16)}… (refcount ${index.refcounts.get(ref.manifestId)})`)
  }

  // Bytes that do not match the id they are sent under are refused, and nothing is kept.
  await blobs.putExpected(id, 'tampered').catch((err: { code: string }) => console.log(`putExpected: ${err.code}`))

  // Many blobs made durable together: their fsyncs at once, each directory once, then visible.
  const batch = blobs.batch()
  const chunk = hashBlob(Buffer.from('a chunk, hashed once: its id names it and checks it'))
  await batch.put(chunk)
  await batch.put('another blob of the same batch')
  console.log(`before commit: ${await blobs.has(chunk.id)}`)
  await batch.commit()
  console.log(`after commit: ${await blobs.has(chunk.id)}`)
} finally {
  await blobs.close()
  await index.close()
  await rm(dataDir, { recursive: true, force: true })
}
