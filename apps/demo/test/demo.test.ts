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
