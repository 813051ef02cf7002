// Every exported name carries TSDoc (the public API is documented where it is declared).
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'

describe('TSDoc', () => {
  it('documents every name exported by src/index.ts, and every member of exported option types', () => {
    const entry = fileURLToPath(new URL('../src/index.ts', import.meta.url))
    // No lib and no @types: symbols and their comments are all this needs, and it keeps the test fast.
    const program = ts.createProgram([entry], {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      noLib: true,
      types: [],
    })
    const checker = program.getTypeChecker()
    const module = checker.getSymbolAtLocation(program.getSourceFile(entry)!)!
    const undocumented: string[] = []
    const exports = checker.getExportsOfModule(module)
    for (const exported of exports) {
      const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported
      if (symbol.getDocumentationComment(checker).length === 0) undocumented.push(exported.name)
      if (symbol.flags & ts.SymbolFlags.Interface) {
        for (const member of checker.getDeclaredTypeOfSymbol(symbol).getProperties()) {
          if (member.getDocumentationComment(checker).length === 0) undocumented.push(`${exported.name}.${member.name}`)
        }
      }
    }
    expect(exports.length).toBeGreaterThan(30)
    expect(undocumented).toEqual([])
  }, 30_000)
})
