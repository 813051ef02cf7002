// `options.signal` on every call: typed ERR_ABORTED with the reason as cause, nothing read
// after an abort, and the abort listener gone once the call is over.
import { getEventListeners } from 'node:events'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import {
  decrypt,
  decryptBytes,
  decryptBytesWithPassphrase,
  decryptWithPassphrase,
  encrypt,
  encryptBytes,
  encryptBytesWithPassphrase,
  encryptWithPassphrase,
  generateIdentity,
  identityToRecipient,
  loadOrCreateIdentityFile,
  readIdentityFile,
  writeIdentityFile,
} from '../src/index.js'
import { CHUNK, collect, splitFile, testBytes } from './helpers.js'

let identity: string
let recipient: string
let dir: string
beforeAll(async () => {
  identity = await generateIdentity()
  recipient = await identityToRecipient(identity)
})
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dcas-crypto-abort-'))
})
afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

const reason = new Error('stop')
function aborted(): AbortSignal {
  const controller = new AbortController()
  controller.abort(reason)
  return controller.signal
}

/** A source that yields `first`, then waits forever; `pulls()` counts the reads. */
function stallingSource(first: Uint8Array): { source: AsyncGenerator<Uint8Array>; pulls: () => number } {
  let pulls = 0
  async function* gen(): AsyncGenerator<Uint8Array> {
    pulls++
    yield first
    pulls++
    await new Promise<never>(() => {})
  }
  return { source: gen(), pulls: () => pulls }
}

const listeners = (signal: AbortSignal): number => getEventListeners(signal, 'abort').length
const abortedWith = { code: 'ERR_ABORTED', name: 'AbortedError', cause: reason }

describe('abort', () => {
  const streams = {
    encrypt: (source: AsyncIterable<Uint8Array>, signal: AbortSignal) => encrypt(source, [recipient], { signal }),
    decrypt: (source: AsyncIterable<Uint8Array>, signal: AbortSignal) => decrypt(source, [identity], { signal }),
    encryptWithPassphrase: (source: AsyncIterable<Uint8Array>, signal: AbortSignal) =>
      encryptWithPassphrase(source, 'pass', { signal, workFactor: 2 }),
    decryptWithPassphrase: (source: AsyncIterable<Uint8Array>, signal: AbortSignal) =>
      decryptWithPassphrase(source, 'pass', { signal }),
  }

  for (const [name, open] of Object.entries(streams)) {
    it(`${name} fails with ERR_ABORTED and reads nothing when the signal is already aborted`, async () => {
      const { source, pulls } = stallingSource(testBytes(10))
      await expect(collect(open(source, aborted()))).rejects.toMatchObject(abortedWith)
      expect(pulls()).toBe(0)
    })
  }

  it('encrypt fails with ERR_ABORTED while it waits on the source, and removes its listener', async () => {
    const controller = new AbortController()
    const { source } = stallingSource(testBytes(10))
    const stream = encrypt(source, [recipient], { signal: controller.signal })
    await stream.next() // the header
    const pending = stream.next()
    controller.abort(reason)
    await expect(pending).rejects.toMatchObject(abortedWith)
    expect(listeners(controller.signal)).toBe(0)
  })

  it('decrypt fails with ERR_ABORTED while it waits on the source, and removes its listener', async () => {
    const file = await encryptBytes(testBytes(3 * CHUNK), [recipient])
    const { header, nonce, chunks } = splitFile(file)
    const controller = new AbortController()
    const { source } = stallingSource(Buffer.concat([header, nonce, chunks[0]!, chunks[1]!]))
    const stream = decrypt(source, [identity], { signal: controller.signal })
    expect((await stream.next()).value).toHaveLength(CHUNK)
    const pending = stream.next()
    controller.abort(reason)
    await expect(pending).rejects.toMatchObject(abortedWith)
    expect(listeners(controller.signal)).toBe(0)
  })

  it('decrypt stops with ERR_ABORTED between chunks of an in-memory file', async () => {
    const file = await encryptBytes(testBytes(4 * CHUNK), [recipient])
    const controller = new AbortController()
    const stream = decrypt(file, [identity], { signal: controller.signal })
    expect((await stream.next()).value).toHaveLength(CHUNK)
    controller.abort(reason)
    await expect(stream.next()).rejects.toMatchObject(abortedWith)
  })

  it('an armored decrypt fails with ERR_ABORTED too', async () => {
    const file = await encryptBytes(testBytes(4 * CHUNK), [recipient], { armor: true })
    const controller = new AbortController()
    const stream = decrypt([file.subarray(0, 100_000), file.subarray(100_000)], [identity], { signal: controller.signal })
    await stream.next()
    controller.abort(reason)
    await expect(collect(stream)).rejects.toMatchObject(abortedWith)
  })

  it('a passphrase decryption aborted after it started fails with ERR_ABORTED', async () => {
    const file = await encryptBytesWithPassphrase(testBytes(100), 'pass', { workFactor: 12 })
    const controller = new AbortController()
    const pending = decryptBytesWithPassphrase(file, 'pass', { signal: controller.signal })
    controller.abort(reason)
    await expect(pending).rejects.toMatchObject(abortedWith)
  })

  it('leaves no abort listener after a completed, a failed, or an abandoned stream', async () => {
    const signal = new AbortController().signal
    const file = await encryptBytes(testBytes(2 * CHUNK), [recipient], { signal })
    await decryptBytes(file, [identity], { signal })
    await expect(decryptBytes(file, [await generateIdentity()], { signal })).rejects.toMatchObject({
      code: 'ERR_NO_MATCHING_IDENTITY',
    })
    for await (const _ of decrypt(file, [identity], { signal })) break
    for await (const _ of encrypt(testBytes(3 * CHUNK), [recipient], { signal })) break
    expect(listeners(signal)).toBe(0)
  })

  it('the one-shot helpers reject with ERR_ABORTED when the signal is already aborted', async () => {
    const file = await encryptBytes('x', [recipient])
    const signal = aborted()
    await expect(encryptBytes('x', [recipient], { signal })).rejects.toMatchObject(abortedWith)
    await expect(decryptBytes(file, [identity], { signal })).rejects.toMatchObject(abortedWith)
    await expect(encryptBytesWithPassphrase('x', 'pass', { signal, workFactor: 2 })).rejects.toMatchObject(abortedWith)
    await expect(decryptBytesWithPassphrase(file, 'pass', { signal })).rejects.toMatchObject(abortedWith)
  })

  it('the key helpers reject with ERR_ABORTED when the signal is already aborted', async () => {
    await expect(generateIdentity({ signal: aborted() })).rejects.toMatchObject(abortedWith)
    await expect(identityToRecipient(identity, { signal: aborted() })).rejects.toMatchObject(abortedWith)
  })

  it('the identity file calls reject with ERR_ABORTED and write nothing when the signal is already aborted', async () => {
    const path = join(dir, 'keys.txt')
    await expect(writeIdentityFile(path, identity, { signal: aborted() })).rejects.toMatchObject(abortedWith)
    await expect(loadOrCreateIdentityFile(path, { signal: aborted() })).rejects.toMatchObject(abortedWith)
    await expect(readIdentityFile(path, { signal: aborted() })).rejects.toMatchObject(abortedWith)
    expect(await readdir(dir)).toEqual([])
  })
})
