// The web console in a real Chromium (Debian's, driven by playwright-core), against two `dcas serve`
// processes: what a person does with it, with the mouse, the keyboard and a narrow screen.
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { access, mkdir, readFile, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { generateData } from '@dcas/server/testing'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { initNode } from '../src/index.js'
import { dcas, filesUnder, serve, stopAll, tempDir, type ServeHandle } from './helpers.js'

/** Debian's chromium; CI installs it with apt. Never a downloaded browser. */
const CHROMIUM = process.env.DCAS_CHROMIUM ?? '/usr/bin/chromium'
/** Where the README's screenshot goes when DCAS_UPDATE_SCREENSHOT=1 (`pnpm screenshot`). */
const SCREENSHOT = new URL('../docs/console.png', import.meta.url).pathname
// A loaded two-core machine runs this beside every other package's tests: waits are long, none is a sleep.
const WAIT = 120_000

let browser: Browser
let dir: { path: string; cleanup: () => Promise<void> }
let a: ServeHandle
let b: ServeHandle
let context: BrowserContext
let page: Page
/** What the page reported as errors: console errors and uncaught exceptions. */
let errors: string[]

beforeAll(async () => {
  await access(CHROMIUM).catch(() => {
    throw new Error(`no Chromium at ${CHROMIUM}: install Debian's (apt-get install chromium), or point DCAS_CHROMIUM at one`)
  })
  browser = await chromium.launch({ executablePath: CHROMIUM, timeout: WAIT })
}, WAIT)

afterAll(async () => {
  await browser?.close()
})

beforeEach(async () => {
  dir = await tempDir()
  const local = { listen: '127.0.0.1:0', http: '127.0.0.1:0' }
  const clusterSecret = 'the secret of the console test cluster'
  await initNode({ root: join(dir.path, 'a'), clusterSecret, ...local })
  await initNode({ root: join(dir.path, 'b'), clusterSecret, ...local })
  a = await serve(join(dir.path, 'a'))
  b = await serve(join(dir.path, 'b'), ['--peer', a.api.address])
  await Promise.all([a.waitFor((l) => l.msg === 'peer connected' && l.peer === b.api.nodeId), b.waitFor((l) => l.msg === 'peer connected' && l.peer === a.api.nodeId)])
  context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1100, height: 760 } })
  page = await context.newPage()
  page.setDefaultTimeout(WAIT)
  errors = []
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text())
  })
  page.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`))
}, WAIT)

afterEach(async () => {
  await context?.close()
  await stopAll()
  await dir.cleanup()
}, WAIT)

const sha256File = async (path: string): Promise<string> => {
  const hash = createHash('sha256')
  for await (const piece of createReadStream(path)) hash.update(piece as Buffer)
  return hash.digest('hex')
}

/** Writes `size` bytes of deterministic data; resolves to their SHA-256. */
async function makeFile(path: string, size: number): Promise<string> {
  const hash = createHash('sha256')
  await pipeline(
    (async function* () {
      for await (const piece of generateData(size, path)) {
        hash.update(piece)
        yield piece
      }
    })(),
    createWriteStream(path),
  )
  return hash.digest('hex')
}

/** The node's API, as a program (not the page) sees it. */
const api = (node: ServeHandle, path: string, init: RequestInit = {}): Promise<Response> =>
  fetch(`${node.api.url}${path}`, { ...init, headers: { authorization: `Bearer ${node.api.token}`, ...(init.headers as Record<string, string> | undefined) } })
const headStatus = async (node: ServeHandle, key: string): Promise<number> => (await api(node, `/v1/objects/${encodeURIComponent(key)}`, { method: 'HEAD' })).status

async function logIn(token = a.api.token): Promise<void> {
  await page.goto(a.api.url)
  await page.getByLabel('API token').fill(token)
  await page.getByRole('button', { name: 'Log in' }).click()
}

/** The peers table's row of node B. */
const peerRow = () => page.getByRole('row').filter({ hasText: b.api.nodeId.slice(0, 12) })

/** Uploads files through the file input labelled "Upload", into `folder`. */
async function uploadFiles(folder: string, files: string[]): Promise<void> {
  await page.getByRole('link', { name: 'Upload', exact: true }).click()
  await page.getByLabel('Folder (key prefix)').fill(folder)
  await page.getByLabel('Upload', { exact: true }).setInputFiles(files)
}

describe('the web console in Chromium, against two nodes', { timeout: 600_000 }, () => {
  it('logs in, shows the peer, uploads 50 MiB with progress, finds it by prefix, downloads it whole, deletes it, and shows the peer going down', async () => {
    const big = join(dir.path, 'big.bin')
    const digest = await makeFile(big, 50 * 1024 * 1024)
    const small = join(dir.path, 'notes.txt')
    await makeFile(small, 1000)

    await logIn()
    await page.getByRole('heading', { name: 'Status', level: 1 }).waitFor()
    await peerRow().getByRole('cell', { name: 'Connected', exact: true }).waitFor()
    await page.getByRole('status').filter({ hasText: /^Live/ }).waitFor()

    // Two files at once; the progress bar of the big one is watched as it moves.
    await page.getByRole('link', { name: 'Upload', exact: true }).click()
    // In the page (its code is a string: this package's types know no DOM).
    await page.evaluate(`{
      const seen = (window.progressSeen = [])
      new MutationObserver(() => {
        const bar = document.querySelector('progress[aria-label="Upload of videos/big.bin"]')
        if (bar !== null) seen.push(bar.value / bar.max)
      }).observe(document.body, { subtree: true, attributes: true, childList: true })
    }`)
    await uploadFiles('videos/', [big, small])
    const item = page.getByRole('listitem').filter({ hasText: 'videos/big.bin' })
    await item.getByText(/^Stored: 50\.0 MiB, version 1, on 1 peer, SHA-256 [0-9a-f]{64}$/).waitFor()
    await page.getByRole('listitem').filter({ hasText: 'videos/notes.txt' }).getByText(/^Stored/).waitFor()
    const seen = await page.evaluate<number[]>('window.progressSeen')
    expect(seen.some((f) => f > 0 && f < 1)).toBe(true)
    expect(seen.at(-1)).toBe(1)

    // The README's picture: the status page of a cluster with objects in it.
    await page.getByRole('link', { name: 'Status' }).click()
    await page.getByText('2 objects stored through this node', { exact: false }).waitFor()
    // Placement: each object should have one copy (the one peer), and both have it.
    await page.getByText('Each object should have 1 copy. Every object has them.').waitFor()
    await page.getByRole('row', { name: /^1 2/ }).waitFor()
    const shot = process.env.DCAS_UPDATE_SCREENSHOT === '1' ? SCREENSHOT : join(dir.path, 'console.png')
    await mkdir(join(shot, '..'), { recursive: true })
    await page.screenshot({ path: shot })

    // Found by its prefix: the folder, then the object; and by searching.
    await page.getByRole('link', { name: 'Objects' }).click()
    await page.getByLabel('Search in all objects').fill('BIG')
    await page.getByRole('link', { name: 'videos/big.bin' }).waitFor()
    await page.getByLabel('Search in all objects').fill('')
    await page.getByRole('link', { name: 'videos/', exact: true }).click()
    await page.getByRole('navigation', { name: 'Folder' }).getByRole('link', { name: 'videos' }).waitFor()
    await page.getByRole('link', { name: 'big.bin' }).click()
    await page.getByRole('heading', { name: 'videos/big.bin', level: 1 }).waitFor()
    expect(await page.getByTestId('sha256').textContent()).toBe(digest)
    // The holder, with the address its peer record gives when it has one.
    await page.getByText(new RegExp(`^${b.api.nodeId.slice(0, 12)}( \\(127\\.0\\.0\\.1:\\d+\\))?, connected$`)).waitFor()

    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download' }).click()])
    expect(download.suggestedFilename()).toBe('big.bin')
    const saved = join(dir.path, 'saved.bin')
    await download.saveAs(saved)
    expect(await sha256File(saved)).toBe(digest)
    await page.getByText(`Its SHA-256 is ${digest}`, { exact: false }).waitFor()

    await page.getByRole('button', { name: 'Delete' }).click()
    const dialog = page.getByRole('dialog', { name: 'Delete “videos/big.bin”?' })
    await dialog.getByRole('button', { name: 'Delete' }).click()
    await page.getByText('Deleted “videos/big.bin” on this node and 1 peer.').waitFor()
    await page.getByRole('link', { name: 'notes.txt' }).waitFor()
    expect(await page.getByRole('link', { name: 'big.bin' }).count()).toBe(0)
    expect(await headStatus(a, 'videos/big.bin')).toBe(404)

    await page.getByRole('link', { name: 'Status' }).click()
    await peerRow().getByRole('cell', { name: 'Connected', exact: true }).waitFor()
    await b.stop('SIGTERM')
    await peerRow().getByRole('cell', { name: /^Not connected/ }).waitFor()
    // What to do: B dials this node, or (its address known from its peer record) is dialled again.
    await peerRow().getByText(/it dials this node, so it reconnects once it runs again|it is dialled again with backoff/).waitFor()
    // Named by its address when its peer record gave one.
    await page.getByText(new RegExp(`^Peer (${b.api.nodeId.slice(0, 12)}|${b.api.address.replaceAll('.', '\\.')}) disconnected$`)).waitFor()
    // With its one placed peer down, a store is refused before anything is kept (write quorum 1): the node says why.
    const refused = await api(a, '/v1/objects/after-b-left.txt', { method: 'PUT', body: 'x' })
    expect(refused.status).toBe(503)
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('ERR_QUORUM')
    expect(await headStatus(a, 'after-b-left.txt')).toBe(404)

    expect(errors).toEqual([])
  })

  it('refuses a wrong token and says where the right one is', async () => {
    // The token field has the focus: it can be typed at once.
    await page.goto(a.api.url)
    await page.getByLabel('API token').waitFor()
    expect(await page.evaluate('document.activeElement?.id')).toBe('token')
    await logIn('not-the-token')
    await page.getByRole('alert').getByText("that is not this node's API token", { exact: false }).waitFor()
    expect(await page.getByLabel('API token').isVisible()).toBe(true)
    await page.getByLabel('API token').fill(a.api.token)
    await page.getByRole('button', { name: 'Log in' }).click()
    await page.getByRole('heading', { name: 'Status', level: 1 }).waitFor()
    expect(errors.every((e) => e.includes('401'))).toBe(true)
    expect(errors).toHaveLength(1)
  })

  it('opens through the one-time link of dcas open: no secret stays in the address bar, and the link works once', async () => {
    const opened = await dcas(['open', '--no-browser', '--root', a.root])
    expect(opened.code).toBe(0)
    const url = opened.stdout.trim()
    expect(url).toMatch(new RegExp(`^${a.api.url}/#login=[\\w-]{43}$`))
    expect(opened.stderr).toContain('one-time link')
    await page.goto(url)
    await page.getByRole('heading', { name: 'Status', level: 1 }).waitFor()
    expect(page.url()).toBe(`${a.api.url}/#/status`)

    const other = await context.newPage()
    await other.goto(url)
    await other.getByText('this login link was used already or has expired: run dcas open again').waitFor()
    await other.getByLabel('API token').waitFor()
    expect(errors).toEqual([])
  })

  it('cancels an upload half way, and the node keeps nothing of it', async () => {
    // 2 GiB of zeros in a sparse file: cheap on disk, long enough to send that the cancel lands midway.
    const huge = join(dir.path, 'huge.bin')
    await writeFile(huge, '')
    await truncate(huge, 2 * 1024 ** 3)
    const blobsBefore = (await filesUnder(join(a.root, 'blobs'))).sort()
    await logIn()
    await page.getByRole('heading', { name: 'Status', level: 1 }).waitFor()
    await uploadFiles('big/', [huge])
    const bar = page.getByRole('progressbar', { name: 'Upload of big/huge.bin' })
    // (page.waitForFunction would evaluate a string, which the console's Content-Security-Policy forbids.)
    await vi.waitFor(async () => expect(await page.evaluate(`(p => p !== null && p.value / p.max)(document.querySelector('progress[aria-label="Upload of big/huge.bin"]'))`)).toBeGreaterThanOrEqual(0.05), { timeout: WAIT, interval: 50 })
    expect(await bar.count()).toBe(1)
    await page.getByRole('button', { name: 'Cancel upload of big/huge.bin' }).click()
    await page.getByRole('listitem').filter({ hasText: 'big/huge.bin' }).getByText('Cancelled: nothing was stored').waitFor()
    expect(await headStatus(a, 'big/huge.bin')).toBe(404)
    // The node drops what it had written of the upload once it sees the connection go.
    await vi.waitFor(async () => expect((await filesUnder(join(a.root, 'blobs'))).sort()).toEqual(blobsBefore), { timeout: WAIT, interval: 200 })
    await a.waitFor((l) => l.msg === 'upload interrupted: the client disconnected; nothing was stored')
    expect(errors).toEqual([])
  })

  it('uploads by drag and drop, browses, downloads and deletes a key with characters that need escaping', async () => {
    const name = 'a #?%&+ é "q" <b>.txt'
    const key = `odd dir/${name}`
    await logIn()
    await page.getByRole('heading', { name: 'Status', level: 1 }).waitFor()
    await page.getByRole('link', { name: 'Upload', exact: true }).click()
    await page.getByLabel('Folder (key prefix)').fill('odd dir/')
    const dropped = await page.evaluateHandle(`{
      const data = new DataTransfer()
      data.items.add(new File(['dropped by a person\\n'], ${JSON.stringify(name)}))
      data
    }`)
    await page.locator('.drop').dispatchEvent('drop', { dataTransfer: dropped })
    await page.getByRole('listitem').filter({ hasText: key }).getByText(/^Stored/).waitFor()
    expect(await headStatus(a, key)).toBe(200)

    await page.getByRole('link', { name: 'Objects' }).click()
    await page.getByRole('link', { name: 'odd dir/', exact: true }).click()
    await page.getByRole('link', { name, exact: true }).click()
    await page.getByRole('heading', { name: key, level: 1 }).waitFor()
    expect(decodeURIComponent(new URL(page.url()).hash.slice('#/object/'.length))).toBe(key)
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download' }).click()])
    // The UTF-8 name arrives (é, not the ASCII fallback's _); Chromium itself replaces " < > ? in file names.
    expect(download.suggestedFilename()).toMatch(/^a #.%&\+ é .q. .b.\.txt$/)
    const saved = join(dir.path, 'saved.txt')
    await download.saveAs(saved)
    expect(await readFile(saved, 'utf8')).toBe('dropped by a person\n')

    await page.getByRole('button', { name: 'Delete' }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click()
    await page.getByText(`Deleted “${key}” on this node and 1 peer.`).waitFor()
    await page.getByText('This folder is empty.').waitFor()
    expect(await headStatus(a, key)).toBe(404)
    expect(errors).toEqual([])
  })

  it('says so when the object to download was deleted meanwhile', async () => {
    expect((await api(a, '/v1/objects/doomed.txt', { method: 'PUT', body: 'soon gone' })).status).toBe(201)
    await logIn()
    await page.getByRole('heading', { name: 'Status', level: 1 }).waitFor()
    await page.goto(`${a.api.url}/#/object/doomed.txt`)
    await page.getByRole('heading', { name: 'doomed.txt', level: 1 }).waitFor()
    await page.getByRole('button', { name: 'Download' }).waitFor()
    expect((await api(a, '/v1/objects/doomed.txt', { method: 'DELETE' })).status).toBe(200)
    await page.getByRole('button', { name: 'Download' }).click()
    await page.getByRole('alert').getByText('(ERR_NOT_FOUND)', { exact: false }).waitFor()
    expect(errors.every((e) => e.includes('404'))).toBe(true)
  })

  it('lists two thousand keys in a folder rendering only the rows in view, moves through them by keyboard, and fits a narrow screen', async () => {
    const keys = Array.from({ length: 2000 }, (_, i) => `many/key-${String(i).padStart(4, '0')}`)
    for (let i = 0; i < keys.length; i += 50) {
      await Promise.all(keys.slice(i, i + 50).map(async (key) => expect((await api(a, `/v1/objects/${key}`, { method: 'PUT', body: key })).status).toBe(201)))
    }
    await logIn()
    await page.getByRole('heading', { name: 'Status', level: 1 }).waitFor()
    await page.goto(`${a.api.url}/#/objects/many%2F`)
    const table = page.getByRole('table', { name: 'Objects in many/' })
    await page.getByText('1000 entries loaded').waitFor()
    expect(await table.getAttribute('aria-rowcount')).toBe('1001')
    expect(await table.getByRole('row').count()).toBeLessThan(100)

    await table.getByRole('link', { name: 'key-0000' }).focus()
    await page.keyboard.press('ArrowDown')
    expect(await page.evaluate('document.activeElement?.textContent')).toBe('key-0001')
    // End goes to the last row loaded; reaching it loads the next page, and End goes further.
    await page.keyboard.press('End')
    await page.getByText('2000 entries', { exact: true }).waitFor()
    expect(await page.evaluate('document.activeElement?.textContent')).toBe('key-0999')
    expect(await table.getByRole('row').count()).toBeLessThan(100)
    await page.keyboard.press('End')
    await table.getByRole('link', { name: 'key-1999' }).waitFor()
    expect(await page.evaluate('document.activeElement?.textContent')).toBe('key-1999')
    await page.keyboard.press('Enter')
    await page.getByRole('heading', { name: 'many/key-1999', level: 1 }).waitFor()

    await page.getByRole('link', { name: 'Objects' }).click()
    await page.getByRole('columnheader', { name: 'Size' }).getByRole('button').click()
    expect(await page.getByRole('columnheader', { name: 'Size' }).getAttribute('aria-sort')).toBe('ascending')

    await page.setViewportSize({ width: 360, height: 740 })
    for (const route of ['#/status', '#/objects/many%2F', '#/upload/']) {
      await page.goto(`${a.api.url}/${route}`)
      await page.getByRole('heading', { level: 1 }).waitFor()
      expect(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth'), route).toBe(true)
    }
    // On a narrow screen too, the objects can be sorted by time.
    await page.goto(`${a.api.url}/#/objects/many%2F`)
    await page.getByRole('columnheader', { name: 'Modified' }).getByRole('button').click()
    expect(await page.getByRole('columnheader', { name: 'Modified' }).getAttribute('aria-sort')).toBe('ascending')
    expect(errors).toEqual([])
  })
})
