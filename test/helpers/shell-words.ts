/**
 * Splits a command line as a POSIX shell would for the quoting the docs use ('...', "...").
 * With `variables`, `$NAME` outside single quotes is replaced by its value (a name not in
 * it is an error); without, a `$` is an error like the other shell syntax.
 */
export function shellWords(line: string, variables?: Record<string, string>): string[] {
  const words: string[] = []
  let word: string | undefined
  const expand = (text: string) =>
    variables === undefined
      ? text
      : text.replaceAll(/\$([A-Za-z_]\w*)/g, (_, name: string) => {
          if (!(name in variables)) throw new Error(`$${name} is not set, in: ${line}`)
          return variables[name]
        })
  for (let i = 0; i < line.length; i++) {
    const c = line[i]
    if (c === "'" || c === '"') {
      const end = line.indexOf(c, i + 1)
      if (end === -1) throw new Error(`unbalanced ${c} in: ${line}`)
      const quoted = line.slice(i + 1, end)
      word = (word ?? '') + (c === '"' ? expand(quoted) : quoted)
      i = end
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word)
      word = undefined
    } else if (c === '$' && variables !== undefined && /[A-Za-z_]/.test(line[i + 1] ?? '')) {
      const name = /^\$[A-Za-z_]\w*/.exec(line.slice(i))![0]
      word = (word ?? '') + expand(name)
      i += name.length - 1
    } else if ('|&;<>$`\\'.includes(c)) {
      throw new Error(`a command without a shell cannot have "${c}": ${line}`)
    } else word = (word ?? '') + c
  }

  if (word !== undefined) words.push(word)
  return words
}
