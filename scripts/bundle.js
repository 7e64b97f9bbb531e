#!/usr/bin/env node
// Builds dist/ from src/ with esbuild: the CLI as ES modules, bundled with its
// dependencies and split into shared chunks, one entry point per command (the
// files oclif's manifest points at), per hook and per worker script. A command
// then loads its own code and the chunks it shares with others, each one file,
// instead of hundreds of package files; oclif itself is in a chunk too, so
// bin/run.js reads nothing from node_modules but the native addons below.
// Runs in `npm run build`, after tsc has type-checked the sources.
import {build} from 'esbuild'
import {mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync} from 'node:fs'
import {createRequire} from 'node:module'
import {dirname, join, relative} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const src = join(root, 'src')
const ts = dir =>
  readdirSync(join(src, dir), {recursive: true})
    .filter(name => name.endsWith('.ts'))
    .map(name => join(src, dir, name))

/** Native addons (installed with the package), and what only runs in development (oclif's TypeScript support). test/cli/bundle.test.ts holds the same list. */
const EXTERNAL = ['onnxruntime-node', '@node-rs/crc32', 'typescript', 'ts-node']

const common = {
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  legalComments: 'none',
  logLevel: 'warning',
  external: EXTERNAL,
  // CommonJS code inside the bundle still calls require() for Node's built-ins.
  banner: {js: "import {createRequire as __mlopsCreateRequire} from 'node:module'; const require = __mlopsCreateRequire(import.meta.url);"},
}

/**
 * The mlops.yaml validator as ajv's standalone code: the sources compile the
 * schema with ajv when first imported; the build puts the generated code in
 * their place, with the same options, so no command loads ajv or compiles.
 */
async function standaloneValidator() {
  const {Ajv} = await import('ajv')
  const {default: standalone} = await import('ajv/dist/standalone/index.js')
  // The options come from the module itself (bundled to a temporary file inside the package, where
  // it finds the schema as the sources do), so the two cannot differ.
  const temp = mkdtempSync(join(root, '.build-'))
  try {
    const out = join(temp, 'schema-validator.mjs')
    await build({...common, entryPoints: [join(src, 'config', 'schema-validator.ts')], outfile: out})
    const {AJV_OPTIONS} = await import(pathToFileURL(out).href)
    const ajv = new Ajv({...AJV_OPTIONS, code: {source: true, esm: true}})
    const schema = JSON.parse(readFileSync(join(root, 'schemas', 'mlops.schema.json'), 'utf8'))
    const code = (standalone.default ?? standalone)(ajv, ajv.compile(schema))
    // The generated code require()s ajv's small runtime helpers (ucs2length): imports, so that they are bundled too.
    const imports = []
    const body = code.replace(/^"use strict";/, '').replace(/require\("([^"]+)"\)/g, (_, name) => {
      imports.push(`import * as __helper${imports.length} from '${name}.js';`)
      return `(__helper${imports.length - 1}.default ?? __helper${imports.length - 1})`
    })
    return `${imports.join('\n')}\nexport const AJV_OPTIONS = ${JSON.stringify(AJV_OPTIONS)};\n${body}\n`
  } finally {
    rmSync(temp, {recursive: true, force: true})
  }
}

/**
 * node-fetch 2 (client-node's and gaxios' HTTP) takes `Url.URL || whatwgUrl.URL`: Node's URL, always
 * there. whatwg-url still loaded with it, and tr46's 260 kB mapping table with that: about 20 ms of
 * every cluster command's start. Node's URL stands in for it.
 */
const nodeUrlForWhatwgUrl = {
  name: 'node-url-for-whatwg-url',
  setup(b) {
    b.onResolve({filter: /^whatwg-url$/}, () => ({path: 'whatwg-url', namespace: 'node-url'}))
    b.onLoad({filter: /.*/, namespace: 'node-url'}, () => ({loader: 'js', contents: `module.exports = {URL: require('node:url').URL}\n`}))
  },
}

/**
 * The Kubernetes client as one CommonJS file, dist/vendor/kubernetes.cjs, outside the ES module chunks:
 * the commands load it through util/code-cache.ts, so that V8 compiles its 1.4 MB once per machine
 * rather than at every start (Node 20 caches no compiled ES modules). In the chunks, src/vendor/kubernetes.ts
 * becomes a module that loads that file and exports the same names.
 */
const kubernetesSource = join(src, 'vendor', 'kubernetes.ts')
const kubernetesBundle = join(root, 'dist', 'vendor', 'kubernetes.cjs')
const kubernetesBuild = await build({
  ...common,
  banner: {},
  format: 'cjs',
  entryPoints: [kubernetesSource],
  outfile: kubernetesBundle,
  minify: true,
  metafile: true,
  plugins: [nodeUrlForWhatwgUrl],
})
const kubernetesNames = Object.keys(createRequire(import.meta.url)(kubernetesBundle))
const kubernetesFacade = {
  name: 'kubernetes-facade',
  setup(b) {
    b.onLoad({filter: /[\\/]vendor[\\/]kubernetes\.ts$/}, args =>
      args.path === kubernetesSource
        ? {
            loader: 'ts',
            resolveDir: dirname(kubernetesSource),
            contents: [
              `import {requireCompiled} from '../util/code-cache.js'`,
              `import {packagePath} from '../util/package-root.js'`,
              `const kubernetes = requireCompiled(packagePath('dist', 'vendor', 'kubernetes.cjs')) as Record<string, any>`,
              ...kubernetesNames.map(name => `export const ${name} = kubernetes.${name}`),
            ].join('\n'),
          }
        : undefined,
    )
  },
}

const validatorSource = await standaloneValidator()
const validatorPath = join(src, 'config', 'schema-validator.ts')

const result = await build({
  ...common,
  entryPoints: [
    join(src, 'cli.ts'),
    ...ts('commands'),
    ...ts('hooks'),
    join(src, 'serve', 'engine-worker.ts'),
    join(src, 'store', 'hash-worker.ts'),
    // Its own entry, for scripts/runtime-support.js.
    join(src, 'onnx', 'runtime-support.ts'),
    validatorPath,
  ],
  outdir: join(root, 'dist'),
  outbase: src,
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  minify: true,
  metafile: true,
  plugins: [
    {
      // dockerode's docker-modem require()s ssh2 when it loads, for ssh:// engines only: ssh2 (outside
      // the bundle, with optional native parts) then loaded on every command that talks to an engine.
      // Its Client class, the one thing docker-modem takes from it, now loads it on first use.
      name: 'lazy-ssh2',
      setup(b) {
        b.onResolve({filter: /^ssh2$/}, () => ({path: 'ssh2', namespace: 'lazy-ssh2'}))
        b.onLoad({filter: /.*/, namespace: 'lazy-ssh2'}, () => ({
          loader: 'js',
          contents: `const name = 'ssh2'
class Client {
  constructor(...args) {
    return new (require(name).Client)(...args)
  }
}
module.exports = {Client}
`,
        }))
      },
    },
    nodeUrlForWhatwgUrl,
    kubernetesFacade,
    {
      name: 'standalone-validator',
      setup(b) {
        b.onLoad({filter: /[\\/]config[\\/]schema-validator\.ts$/}, args =>
          args.path === validatorPath ? {contents: validatorSource, loader: 'js', resolveDir: dirname(validatorPath)} : undefined,
        )
      },
    },
  ],
})
// What went into which file and what each file imports (test/cli/bundle.test.ts reads it; handy for
// profiling start-up), beside dist/ rather than in it: dist/ goes into the images.
const meta = {
  inputs: {...kubernetesBuild.metafile.inputs, ...result.metafile.inputs},
  outputs: {...kubernetesBuild.metafile.outputs, ...result.metafile.outputs},
}
writeFileSync(join(root, '.bundle-meta.json'), JSON.stringify(meta))
const outputs = Object.keys(meta.outputs)
console.error(`bundle: ${outputs.length} files in ${relative(root, join(root, 'dist'))}/`)
