// XML both ways. Responses are written with every text escaped; request bodies (DeleteObjects,
// CompleteMultipartUpload, CreateBucket) are parsed by saxes — strict, streaming, no DTD and so no
// entity expansion — into a small element tree, with their size, element count and depth bounded.
import { SaxesParser } from 'saxes'
import { S3Error } from './errors.js'

/** S3's XML namespace. */
export const S3_NAMESPACE = 'http://s3.amazonaws.com/doc/2006-03-01/'

/** Escapes text for XML; characters XML 1.0 cannot hold become character references, as S3 writes them. */
export function escapeXml(text: string): string {
  // eslint-disable-next-line no-control-regex -- the characters XML 1.0 cannot hold are what this finds
  return text.replace(/[&<>"']|[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, (c) => {
    switch (c) {
      case '&':
        return '&amp;'
      case '<':
        return '&lt;'
      case '>':
        return '&gt;'
      case '"':
        return '&quot;'
      case "'":
        return '&apos;'
      default:
        return `&#x${c.charCodeAt(0).toString(16)};`
    }
  })
}

/** Rendered XML (already escaped). */
export class Xml {
  constructor(readonly text: string) {}
}

/** What an element holds: text (escaped here), a number or boolean, rendered XML, or a list of those. */
export type XmlContent = string | number | boolean | Xml | ReadonlyArray<Xml | undefined> | undefined

/** `<name attrs>content</name>`; `undefined` content gives an empty element. */
export function el(name: string, content?: XmlContent, attributes?: Record<string, string>): Xml {
  const attrs = attributes === undefined ? '' : Object.entries(attributes).map(([k, v]) => ` ${k}="${escapeXml(v)}"`).join('')
  let inner: string
  if (content === undefined) inner = ''
  else if (content instanceof Xml) inner = content.text
  else if (typeof content === 'string') inner = escapeXml(content)
  else if (typeof content === 'number' || typeof content === 'boolean') inner = String(content)
  else inner = content.map((c) => c?.text ?? '').join('')
  return new Xml(`<${name}${attrs}>${inner}</${name}>`)
}

/** A whole document: the declaration, then `root`. */
export function xmlDocument(root: Xml): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${root.text}`
}

/** An element of a parsed request body: its local name (no namespace prefix), children and text. */
export interface XmlElement {
  name: string
  children: XmlElement[]
  text: string
}

/** Bounds on a request body's XML. */
export interface XmlLimits {
  /** Most bytes (default 1 MiB). */
  maxBytes?: number
  /** Most elements (default 100 000). */
  maxElements?: number
  /** Deepest nesting (default 16). */
  maxDepth?: number
}

const malformed = (message: string, cause?: unknown): S3Error =>
  new S3Error('MalformedXML', `The XML you provided was not well-formed or did not validate against our published schema: ${message}`, cause === undefined ? undefined : { cause })

/**
 * Parses an XML request body as it arrives into an element tree; `undefined` for an empty body.
 * Throws `MalformedXML` (not well-formed, a DOCTYPE, too many elements or too deep) or
 * `MaxMessageLengthExceeded` (too many bytes).
 */
export async function parseXml(source: AsyncIterable<Uint8Array>, limits: XmlLimits = {}): Promise<XmlElement | undefined> {
  const maxBytes = limits.maxBytes ?? 1024 * 1024
  const maxElements = limits.maxElements ?? 100_000
  const maxDepth = limits.maxDepth ?? 16
  const parser = new SaxesParser()
  const decoder = new TextDecoder('utf-8', { fatal: true })
  const stack: XmlElement[] = []
  let root: XmlElement | undefined
  let elements = 0
  let failure: S3Error | undefined
  const fail = (err: S3Error): void => {
    failure ??= err
  }
  parser.on('error', (err) => fail(malformed(err.message, err)))
  parser.on('doctype', () => fail(malformed('a DOCTYPE is not allowed')))
  parser.on('opentag', (tag) => {
    if (++elements > maxElements) return fail(malformed(`more than ${maxElements} elements`))
    if (stack.length >= maxDepth) return fail(malformed(`nested deeper than ${maxDepth}`))
    const colon = tag.name.indexOf(':')
    const element: XmlElement = { name: colon < 0 ? tag.name : tag.name.slice(colon + 1), children: [], text: '' }
    const parent = stack.at(-1)
    if (parent === undefined) root = element
    else parent.children.push(element)
    stack.push(element)
  })
  const addText = (text: string): void => {
    const current = stack.at(-1)
    if (current !== undefined) current.text += text
  }
  parser.on('text', addText)
  parser.on('cdata', addText)
  parser.on('closetag', () => void stack.pop())

  let bytes = 0
  let sawContent = false
  for await (const piece of source) {
    bytes += piece.byteLength
    if (bytes > maxBytes) throw new S3Error('MaxMessageLengthExceeded', `Your request was too big: an XML body may have at most ${maxBytes} bytes.`)
    let text: string
    try {
      text = decoder.decode(piece, { stream: true })
    } catch (err) {
      throw malformed('the body is not UTF-8', err)
    }
    if (!sawContent && text.trim() === '') continue
    sawContent = true
    parser.write(text)
    if (failure !== undefined) throw failure
  }
  try {
    const rest = decoder.decode()
    if (rest !== '') parser.write(rest)
  } catch (err) {
    throw malformed('the body is not UTF-8', err)
  }
  if (!sawContent) return undefined
  parser.close()
  if (failure !== undefined) throw failure
  if (root === undefined) throw malformed('no root element')
  return root
}

/** The children of `element` named `name`. */
export function childrenNamed(element: XmlElement, name: string): XmlElement[] {
  return element.children.filter((c) => c.name === name)
}

/** The text of the one child named `name`, or `undefined` when there is none. Several is `MalformedXML`. */
export function childText(element: XmlElement, name: string): string | undefined {
  const found = childrenNamed(element, name)
  if (found.length > 1) throw malformed(`<${element.name}> has ${found.length} <${name}> elements`)
  return found[0]?.text
}
