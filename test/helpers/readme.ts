import {readFileSync} from 'node:fs'
import {join} from 'node:path'

/**
 * The README's by-hand story and the docs' examples as steps, and what may differ
 * between a document and a run: test/docs/readme.test.ts runs the README's parts 1 and 2,
 * test/docs/docs-examples.test.ts the ```console blocks of docs/*.md, and
 * test/e2e/docs-k8s.test.ts on the real node the README's part 3 and the docs' blocks that need pods.
 */
export const README = join(import.meta.dirname, '..', '..', 'README.md')
export const DOCS = join(import.meta.dirname, '..', '..', 'docs')
export const readDoc = (doc: string) => readFileSync(join(DOCS, doc), 'utf8')
export const STORY = '## Your own project, step by step'
/** The story's parts. */
export const LOCAL = '### 1. On this machine'
export const DOCKER = '### 2. In Docker'
export const KUBERNETES = '### 3. On Kubernetes'

export interface StoryStep {
  /** The command line as the document shows it, without its prompt and comment. */
  line: string
  /** The lines shown under it: its output. */
  expected: string[]
  /** The exit code its comment states (`# exit code 4 (conflict)`), and the name it gives it; else 0. */
  exit?: {code: number; name: string}
}

/** The ```console blocks under a `###` heading of the README's story section, as steps. */
export function storySteps(markdown: string, heading: string): StoryStep[] {
  const story = markdown.slice(markdown.indexOf(STORY))
  const sectionEnd = story.indexOf('\n## ', STORY.length)
  const section = sectionEnd === -1 ? story : story.slice(0, sectionEnd)
  const start = section.indexOf(`\n${heading}\n`)
  if (start === -1) throw new Error(`README.md: no "${heading}" under "${STORY}"`)
  const next = section.indexOf('\n### ', start + 1)
  const steps = consoleBlocks(section.slice(start, next === -1 ? undefined : next), `README.md "${heading}"`).flat()
  // A part that yields no step would pass with nothing run.
  if (steps.length === 0) throw new Error(`README.md: "${heading}" has no \`$ \` step in a console block`)
  return steps
}

/** The `###` headings of the README's story section, in order. */
export function storyHeadings(markdown: string): string[] {
  const story = markdown.slice(markdown.indexOf(STORY))
  const sectionEnd = story.indexOf('\n## ', STORY.length)
  const section = sectionEnd === -1 ? story : story.slice(0, sectionEnd)
  return [...section.matchAll(/^### .*$/gm)].map(match => match[0])
}

/** Each ```console block of a markdown text, in order, as its steps; `where` names the text in errors. */
export function consoleBlocks(markdown: string, where: string): StoryStep[][] {
  return [...markdown.matchAll(/^```console\n([\s\S]*?)^```$/gm)].map(block => {
    const steps: StoryStep[] = []
    for (const line of block[1].split('\n')) {
      if (line.startsWith('$ ')) {
        const exit = /\s+#\s*exit code (\d+) \(([^)]+)\)\s*$/.exec(line)
        steps.push({
          line: line.slice(2).replace(/\s+#.*$/, ''),
          expected: [],
          ...(exit && {exit: {code: Number(exit[1]), name: exit[2]}}),
        })
      } else if (line !== '' || steps.length > 0) {
        if (steps.length === 0) throw new Error(`${where}: output before any command in a console block: ${line}`)
        steps.at(-1)!.expected.push(line)
      }
    }

    // A block with no command would run nothing and pass.
    if (steps.length === 0) throw new Error(`${where}: a console block with no \`$ \` command`)
    // The block's closing fence follows a newline, not an empty output line.
    for (const step of steps) while (step.expected.at(-1) === '') step.expected.pop()
    return steps
  })
}

/**
 * The docs' blocks that need pods which start, by doc and first command: test/e2e/docs-k8s.test.ts
 * runs them on the real node, in this order, after the README's part 3 in the same project;
 * test/docs/docs-examples.test.ts leaves them to it.
 */
export const REAL_NODE_BLOCKS = [
  {doc: 'predict.md', first: "mlops predict --target k8s --data '[[6.3, 3.3, 6.0, 2.5]]' --expect virginica"},
  {doc: 'kubernetes.md', first: 'mlops render --model iris@prod --out rendered/'},
] as const

/** The ```console block of docs/`doc` that starts with `first`. */
export function docBlock(doc: string, first: string): StoryStep[] {
  const block = consoleBlocks(readDoc(doc), doc).find(steps => steps[0]?.line === first)
  if (!block) throw new Error(`docs/${doc}: no console block starts with $ ${first}`)
  return block
}

/** The README's exit-code table: code → name (`4` → `conflict`). */
export function exitCodeNames(readme: string): Map<number, string> {
  const table = readme.slice(readme.indexOf('\n## Exit codes\n'))
  return new Map([...table.matchAll(/^\| (\d+) \| ([^|]+?) \|/gm)].map(row => [Number(row[1]), row[2]]))
}

/** What may differ between the README and a run, replaced by a placeholder on both sides. */
export function normalise(text: string): string[] {
  return text
    .split('\n')
    .map(line =>
      line
        .replaceAll(/\b[0-9a-f]{64}\b/g, '<sha256>')
        .replaceAll(/\b[0-9a-f]{12}\b/g, '<sha>')
        .replaceAll(/127\.0\.0\.1:\d+/g, '127.0.0.1:<port>')
        .replaceAll(/\bpid \d+/g, 'pid <pid>')
        .replaceAll(/workdir-[a-z0-9]+-\d+/g, 'workdir-<id>')
        .replaceAll(/\b(mlops-[a-z0-9-]*?-\d+)-[a-z0-9]{8}\b/g, '$1-<id>')
        .replaceAll(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, '<time>')
        .replaceAll(/\b\d+(\.\d+)? ms\b/g, '<ms>')
        .replaceAll(/\b\d+(\.\d+)?s\b/g, '<seconds>')
        // Durations in JSON and log fields: "seconds": 0.027, seconds=0.147.
        .replaceAll(/("seconds": |\bseconds=)\d+(\.\d+)?\b/g, '$1<seconds>')
        .replaceAll(/\b\d+(\.\d+)? (B|KiB|MiB|GiB)\b/g, '<size>')
        .replaceAll(/ by \S+@\S+/g, ' by <user>')
        // Part 3: the store's bucket and the pods' names are the cluster's.
        .replaceAll(/gs:\/\/\S*?\/iris\//g, 'gs://<store>/iris/')
        .replaceAll(/\biris-[a-z0-9]{8,10}-[a-z0-9]{5}\b/g, 'iris-<pod>')
        // The namespace may exist already (mlops image secret makes it).
        .replace(/^namespace\/(\S+) (created|unchanged)$/, 'namespace/$1 <applied>')
        .replaceAll(/\s+/g, ' ')
        .trim()
        // The load figures' row: requests and errors are the README's, requests/s are this machine's.
        .replace(/^(\d+) (\d+) \d+ <ms>/, '$1 $2 <rps> <ms>'),
    )
    .filter((line, i, lines) => line !== '' || i < lines.length - 1)
}
