import { describe, expect, it } from 'vitest'
import { el, escapeXml, parseXml, xmlDocument } from '../src/xml.js'

async function* pieces(text: string | Buffer, step = 5): AsyncGenerator<Uint8Array> {
  const bytes = Buffer.from(text)
  for (let i = 0; i < bytes.length; i += step) {
    await Promise.resolve()
    yield bytes.subarray(i, i + step)
  }
}

describe('XML', () => {
  it('escapes what it writes, control characters included', () => {
    expect(escapeXml(`a<b>&"c'\u0001`)).toBe('a&lt;b&gt;&amp;&quot;c&apos;&#x1;')
    expect(xmlDocument(el('R', [el('Key', 'x & y'), el('N', 3), el('T', true)], { xmlns: 'ns' }))).toBe('<?xml version="1.0" encoding="UTF-8"?>\n<R xmlns="ns"><Key>x &amp; y</Key><N>3</N><T>true</T></R>')
  })

  it('parses a body split anywhere, decoding entities and multi-byte characters', async () => {
    const root = await parseXml(pieces('<?xml version="1.0"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key> a&amp;b%+ é😀 </Key></Object></Delete>', 3))
    expect(root?.name).toBe('Delete')
    expect(root?.children[0]?.children[0]?.text).toBe(' a&b%+ é😀 ')
  })

  it('gives undefined for an empty body', async () => {
    expect(await parseXml(pieces('  \n'))).toBeUndefined()
  })

  it('refuses a DOCTYPE, entity expansion, malformed XML and too much of it', async () => {
    const bomb = '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><Delete><Object><Key>&lol2;</Key></Object></Delete>'
    await expect(parseXml(pieces(bomb))).rejects.toMatchObject({ code: 'MalformedXML' })
    await expect(parseXml(pieces('<Delete><Object><Key>&unknown;</Key></Object></Delete>'))).rejects.toMatchObject({ code: 'MalformedXML' })
    await expect(parseXml(pieces('<Delete><Object></Delete>'))).rejects.toMatchObject({ code: 'MalformedXML' })
    await expect(parseXml(pieces('<a/><b/>'))).rejects.toMatchObject({ code: 'MalformedXML' })
    await expect(parseXml(pieces(`<a>${'<b/>'.repeat(100)}</a>`), { maxElements: 50 })).rejects.toMatchObject({ code: 'MalformedXML' })
    await expect(parseXml(pieces(`${'<a>'.repeat(40)}${'</a>'.repeat(40)}`))).rejects.toMatchObject({ code: 'MalformedXML' })
    await expect(parseXml(pieces(`<a>${'x'.repeat(2000)}</a>`), { maxBytes: 1000 })).rejects.toMatchObject({ code: 'MaxMessageLengthExceeded' })
    await expect(parseXml(pieces(Buffer.from([0x3c, 0x61, 0x3e, 0xff, 0x3c, 0x2f, 0x61, 0x3e])))).rejects.toMatchObject({ code: 'MalformedXML' })
  })
})
