import {expect} from 'chai'
import {readFileSync, readdirSync, statSync} from 'node:fs'
import {join} from 'node:path'

import * as errors from '../../src/errors.js'
import {ExitCode} from '../../src/errors.js'
import {README, exitCodeNames} from '../helpers/readme.js'

/** The README's name for a code: the constant's name in words; 2 is both usage and config. */
const documentedName = (name: string) => (name === 'USAGE' ? 'usage / config' : name.toLowerCase().replaceAll('_', ' '))

function sources(folder: string): string[] {
  return readdirSync(folder).flatMap(entry => {
    const path = join(folder, entry)
    return statSync(path).isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : []
  })
}

describe("exit codes: the README's table is the code's table", () => {
  const table = exitCodeNames(readFileSync(README, 'utf8'))

  it('every code in src/errors.ts is a row of the table, by the same name, and there is no other row', () => {
    const fromCode = new Map(Object.entries(ExitCode).map(([name, code]) => [code, documentedName(name)]))
    expect(new Map([...table].sort(([a], [b]) => a - b))).to.deep.equal(new Map([...fromCode].sort(([a], [b]) => a - b)))
  })

  it('every error class a service can throw exits with a documented code', () => {
    const classes = (Object.values(errors) as unknown[]).filter(
      (value): value is new (message: string) => errors.MlopsError =>
        typeof value === 'function' && (value as {prototype?: unknown}).prototype instanceof errors.MlopsError,
    )
    expect(classes.length).to.be.greaterThan(10)
    for (const Class of classes) expect(table.has(new Class('x').exitCode), Class.name).to.equal(true)
  })

  it('no exit status in src/ or bin/ is a bare number: each one is an ExitCode constant', () => {
    const bare = [...sources('src'), ...sources('bin')].flatMap(path =>
      readFileSync(path, 'utf8')
        .split('\n')
        .map((line, index) => ({line, where: `${path}:${index + 1}`}))
        .filter(({line}) => /process\.exit(Code)?\s*(=\s*|\(\s*)[1-9]/.test(line))
        .map(({where}) => where),
    )
    expect(bare).to.deep.equal([])
  })

  it('a storage endpoint that is not a GCS JSON API is a usage error (2), as row 2 says, not integrity (5)', () => {
    expect(table.get(ExitCode.USAGE)).to.equal('usage / config')
    const readme = readFileSync(README, 'utf8')
    const row = (code: number) => readme.match(new RegExp(`^\\| ${code} \\| [^|]+\\| (.*) \\|$`, 'm'))?.[1] ?? ''
    expect(row(2)).to.include('not a GCS JSON API')
    expect(row(5)).to.not.include('store answer')
  })
})
