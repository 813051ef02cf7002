import { createMemoryBlobStore, createMemoryIndex, openBlobStore, openIndex, type FsBlobStore, type Index } from '../src/index.js'
import { blobStoreTests, indexTests } from '../src/testing/index.js'
import { flipBit, removeDir, tempDir } from './helpers.js'

const roots = new Map<object, string>()

async function diskStore(maxBufferedRead?: number): Promise<FsBlobStore> {
  const root = await tempDir()
  const store = await openBlobStore({ root, maxBufferedRead })
  roots.set(store, root)
  return store
}

async function disposeDisk(store: FsBlobStore | Index): Promise<void> {
  await store.close()
  await removeDir(roots.get(store))
  roots.delete(store)
}

blobStoreTests({
  name: 'memory BlobStore',
  setup: () => Promise.resolve(createMemoryBlobStore()),
  teardown: (store) => store.close(),
  damage: (store, id) => store.damage(id),
})

blobStoreTests({
  name: 'disk BlobStore',
  setup: () => diskStore(),
  teardown: disposeDisk,
  damage: (store, id) => flipBit(store, id),
})

blobStoreTests({
  name: 'disk BlobStore reading in two passes (maxBufferedRead 1 KiB)',
  setup: () => diskStore(1024),
  teardown: disposeDisk,
  damage: (store, id) => flipBit(store, id, 2),
})

indexTests({
  name: 'memory Index',
  setup: () => Promise.resolve(createMemoryIndex()),
  teardown: (index) => index.close(),
})

indexTests({
  name: 'LMDB Index',
  setup: async () => {
    const dir = await tempDir()
    const index = await openIndex({ path: dir })
    roots.set(index, dir)
    return index
  },
  teardown: disposeDisk,
  reopen: async (index) => {
    const dir = roots.get(index)
    if (dir === undefined) throw new Error('unknown index')
    await index.close()
    roots.delete(index)
    const reopened = await openIndex({ path: dir })
    roots.set(reopened, dir)
    return reopened
  },
})
