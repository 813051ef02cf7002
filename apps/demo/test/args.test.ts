import { describe, expect, it } from 'vitest'
import { parseDemoArgs } from '../src/args.js'

describe('demo arguments', () => {
  it('defaults to the original ports 8080, 3030 and 7000 with a temporary data folder', () => {
    expect(parseDemoArgs([])).toEqual({ ports: [8080, 3030, 7000], help: false })
  })

  it('takes other ports and a data folder', () => {
    expect(parseDemoArgs(['--ports', '18080,13030,17000', '--data', '/tmp/x'])).toEqual({
      ports: [18080, 13030, 17000],
      data: '/tmp/x',
      help: false,
    })
  })

  it('rejects malformed or repeated ports with a message that says what is expected', () => {
    expect(() => parseDemoArgs(['--ports', '1,2'])).toThrow(/three ports/)
    expect(() => parseDemoArgs(['--ports', '1,2,99999'])).toThrow(/three ports/)
    expect(() => parseDemoArgs(['--ports', '1,1,2'])).toThrow(/different/)
    expect(parseDemoArgs(['--ports', '0,0,0']).ports).toEqual([0, 0, 0])
  })
})
