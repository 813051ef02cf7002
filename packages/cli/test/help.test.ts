import { describe, expect, it } from 'vitest'
import { runCli } from '../src/index.js'
import { capture, dcas } from './helpers.js'

const help = async (args: string[]): Promise<{ code: number; stdout: string }> => {
  const stdout = capture()
  const code = await runCli([...args, '--help'], { stdout, stderr: capture(), env: {} })
  return { code, stdout: stdout.text() }
}

// What each command's --help must list: written out here, not read from the program.
const PLACEMENT = ['--replicas <n|all>', '--write-quorum <n|all>', '--zone <label>', '--capacity <bytes>', '--announce <host:port>', '--lost-after <duration>', '--repair-rate <bytes>']
const OPTIONS: Record<string, string[]> = {
  init: ['-r, --root <dir>', '--cluster-secret <secret>', '--join <file>', '--listen <host:port>', '--peer <host:port>', '--http <127.0.0.1:port>', ...PLACEMENT, '--json'],
  serve: ['-r, --root <dir>', '--listen <host:port>', '--peer <host:port>', '--http <127.0.0.1:port>', ...PLACEMENT, '--log-level <level>'],
  put: ['-r, --root <dir>', '--no-progress', '--json'],
  get: ['-r, --root <dir>', '-o, --output <file>', '--offset <bytes>', '--length <bytes>', '--no-progress'],
  rm: ['-r, --root <dir>', '--json'],
  ls: ['-r, --root <dir>', '--limit <n>', '--after <key>', '--json'],
  stat: ['-r, --root <dir>', '--json'],
  status: ['-r, --root <dir>', '--json'],
  open: ['-r, --root <dir>', '--no-browser'],
  scrub: ['-r, --root <dir>', '--json'],
  drain: ['-r, --root <dir>', '--timeout <duration>', '--json'],
  'identity export': ['-r, --root <dir>', '-o, --output <file>'],
}

const USAGE: Record<string, string> = {
  put: 'Usage: dcas put [options] <key> [file]',
  get: 'Usage: dcas get [options] <key>',
  ls: 'Usage: dcas ls [options] [prefix]',
  'identity export': 'Usage: dcas identity export [options]',
}

describe('--help', () => {
  it.each(Object.entries(OPTIONS))('of %s lists every option it takes', async (command, options) => {
    const { code, stdout } = await help(command.split(' '))
    expect(code).toBe(0)
    for (const option of [...options, '-h, --help']) expect(stdout, option).toContain(option)
    if (USAGE[command] !== undefined) expect(stdout).toContain(USAGE[command])
  })

  it('of dcas itself (the built executable) lists every command', async () => {
    const { code, stdout } = await dcas(['--help'])
    expect(code).toBe(0)
    for (const command of ['init', 'serve', 'put', 'get', 'rm', 'ls', 'stat', 'status', 'open', 'scrub', 'drain', 'identity']) expect(stdout).toMatch(new RegExp(`^  ${command} `, 'm'))
  })

  it('exits 2 and points to --help on an unknown command or option', async () => {
    const unknown = await dcas(['fetch'])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain("unknown command 'fetch'")
    const option = await dcas(['ls', '--colour'])
    expect(option.code).toBe(2)
    expect(option.stderr).toContain("unknown option '--colour'")
    expect(option.stderr).toContain('(add --help for usage)')
  })
})
