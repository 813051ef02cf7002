import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export interface KilledChild {
  /** The lines it printed before it was killed. */
  lines: string[]
  /** Everything it printed on stderr. */
  stderr: string
}

/**
 * Runs a fixture under tsx and sends it SIGKILL as soon as it has printed `killAfter` lines,
 * so the kill lands wherever the child happens to be. Rejects if it exits by itself.
 */
export function runUntilKilled(fixture: string, args: string[], killAfter: number): Promise<KilledChild> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL(`./fixtures/${fixture}`, import.meta.url)), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const lines: string[] = []
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text))
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line)
    if (lines.length === killAfter) child.kill('SIGKILL')
  })
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve({ lines, stderr })
      else reject(new Error(`child exited by itself (code ${code}): ${stderr}`))
    })
  })
}

/** A small seeded generator (mulberry32), so that a failing run can be replayed from its seed. */
export function seededRandom(seed: number): (below: number) => number {
  let state = seed >>> 0
  return (below) => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * below)
  }
}
