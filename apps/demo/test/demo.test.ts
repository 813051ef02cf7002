import { execFile } from 'node:child_process'
import { createServer as createNetServer, type AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { runDemo } from '../src/demo.js'

describe('demo', () => {
  it('runs every step on free ports and tells the story line by line', async () => {
    const lines: string[] = []
    await runDemo({ ports: [0, 0, 0], help: false }, (line) => lines.push(line))
    const text = lines.join('\n')
    expect(text).toMatch(/Server \d+ stream: 11/)
    expect(lines.filter((l) => /stream: 11$/.test(l))).toHaveLength(4)
    expect(text).toMatch(/holds only ciphertext/)
    expect(text).toMatch(/deleted item_1, acknowledged by :\d+ and :\d+/)
    expect(text).toMatch(/read item_2 back from :\d+, verified and healed locally: "big conten2"/)
    expect(lines.at(-1)).toMatch(/every step held/)
  })
})

describe('demo binary', () => {
  const main = new URL('../dist/main.js', import.meta.url).pathname
  const runMain = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [main, ...args], (err, stdout, stderr) => resolve({ code: err === null ? 0 : (err.code as number), stdout, stderr }))
    })

  it('exits 0 after every step held', async () => {
    const { code, stdout } = await runMain(['--ports', '0,0,0'])
    expect(code).toBe(0)
    expect(stdout).toMatch(/every step held/)
  })

  it('exits non-zero and says what to do when a port is taken', async () => {
    const blocker = createNetServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    const { port } = blocker.address() as AddressInfo
    try {
      const { code, stderr } = await runMain(['--ports', `${port},0,0`])
      expect(code).not.toBe(0)
      expect(stderr).toMatch(/--ports/)
    } finally {
      blocker.close()
    }
  })
})
