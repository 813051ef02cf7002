// A strict reader of the Prometheus text exposition format (version 0.0.4): every line must
// be a HELP, a TYPE or a sample of a declared family, or it throws, naming the line.

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

export interface Exposition {
  samples: Sample[]
  /** The value of the one sample with this name and exactly these labels (undefined if none). */
  value(name: string, labels?: Record<string, string>): number | undefined
  type(name: string): string | undefined
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"/y
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped'])
const SUFFIXES: Record<string, string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['', '_sum', '_count'] }

function parseValue(text: string, line: string): number {
  if (text === '+Inf') return Infinity
  if (text === '-Inf') return -Infinity
  if (text === 'NaN') return NaN
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`bad value in: ${line}`)
  return Number(text)
}

export function parseExposition(text: string): Exposition {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline')
  const types = new Map<string, string>()
  const helps = new Set<string>()
  const samples: Sample[] = []
  const familyOf = (name: string): string | undefined => {
    if (types.has(name)) return name
    for (const [family, type] of types) for (const suffix of SUFFIXES[type] ?? []) if (name === family + suffix) return family
    return undefined
  }
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line)
      if (m === null) continue // a comment
      const [, kind, name, rest] = m as unknown as [string, string, string, string]
      if (!NAME.test(name)) throw new Error(`bad metric name in: ${line}`)
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) throw new Error(`unknown type in: ${line}`)
        if (types.has(name)) throw new Error(`second TYPE for ${name}`)
        types.set(name, rest)
      } else {
        if (helps.has(name)) throw new Error(`second HELP for ${name}`)
        helps.add(name)
      }
      continue
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)( -?\d+)?$/.exec(line)
    if (m === null) throw new Error(`not a sample: ${line}`)
    const [, name, labelText, valueText] = m as unknown as [string, string, string | undefined, string]
    if (familyOf(name) === undefined) throw new Error(`sample of an undeclared family: ${line}`)
    const labels: Record<string, string> = {}
    if (labelText !== undefined) {
      const inner = labelText.slice(1, -1)
      let pos = 0
      while (pos < inner.length) {
        LABEL.lastIndex = pos
        const l = LABEL.exec(inner)
        if (l === null) throw new Error(`bad labels in: ${line}`)
        if (l[1]! in labels) throw new Error(`repeated label in: ${line}`)
        labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
        pos = LABEL.lastIndex
        if (pos < inner.length) {
          if (inner[pos] !== ',') throw new Error(`bad labels in: ${line}`)
          pos++
        }
      }
    }
    samples.push({ name, labels, value: parseValue(valueText, line) })
  }
  const same = (a: Record<string, string>, b: Record<string, string>): boolean => Object.keys(a).length === Object.keys(b).length && Object.entries(b).every(([k, v]) => a[k] === v)
  return {
    samples,
    value: (name, labels = {}) => samples.find((s) => s.name === name && same(s.labels, labels))?.value,
    type: (name) => types.get(name),
  }
}
