import { describe, expect, it } from 'vitest'
import { createProgress } from '../src/progress.js'
import { capture } from './helpers.js'

const MiB = 1024 * 1024

/** What a terminal would show line by line: escape sequences and carriage returns become line breaks. */
const screenLines = (text: string): string[] =>
  text
    .split(String.fromCharCode(27))
    .map((part, i) => (i === 0 ? part : part.replace(/^\[[0-9;]*[A-Za-z]/, '\n')))
    .join('')
    .split(/\r|\n/)

describe('progress bars', () => {
  it('draw bytes, percentage, rate and ETA on a terminal', () => {
    const tty = capture({ isTTY: true })
    const progress = createProgress(tty, 'put big', 64 * MiB)
    progress.update(16 * MiB)
    progress.update(32 * MiB)
    progress.stop()
    const last = screenLines(tty.text())
      .filter((s) => s.includes('put big'))
      .pop()
    expect(last).toMatch(/^put big \[#+-+\] 50% \| 32\.0 MiB\/64\.0 MiB \| [\d.]+ (B|KiB|MiB|GiB)\/s \| ETA \S+/)
  })

  it('draw bytes and rate without a bar when the size is unknown (standard input)', () => {
    const tty = capture({ isTTY: true })
    const progress = createProgress(tty, 'put piped', undefined)
    progress.update(3 * MiB)
    progress.stop()
    expect(tty.text()).toMatch(/put piped 3\.00 MiB \| [\d.]+ (B|KiB|MiB|GiB)\/s/)
    expect(tty.text()).not.toContain('ETA')
  })

  it('write nothing when the stream is not a terminal', () => {
    const pipe = capture()
    const progress = createProgress(pipe, 'put big', 64 * MiB)
    progress.update(32 * MiB)
    progress.stop()
    expect(pipe.text()).toBe('')
  })

  it('write nothing for a small transfer, even on a terminal', () => {
    const tty = capture({ isTTY: true })
    const progress = createProgress(tty, 'put small', MiB - 1)
    progress.update(MiB - 1)
    progress.stop()
    expect(tty.text()).toBe('')
  })
})
