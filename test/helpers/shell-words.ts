/** Splits a command line as a POSIX shell would for the quoting the README uses ('...', "..."). */
export function shellWords(line: string): string[] {
  const words: string[] = []
  let word: string | undefined
  for (let i = 0; i < line.length; i++) {
    const c = line[i]
    if (c === "'" || c === '"') {
      const end = line.indexOf(c, i + 1)
      if (end === -1) throw new Error(`unbalanced ${c} in: ${line}`)
      word = (word ?? '') + line.slice(i + 1, end)
      i = end
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word)
      word = undefined
    } else if ('|&;<>$`\\'.includes(c)) {
      throw new Error(`the README's story runs commands without a shell; "${c}" in: ${line}`)
    } else word = (word ?? '') + c
  }

  if (word !== undefined) words.push(word)
  return words
}
