import {expect} from 'chai'
import {readFileSync} from 'node:fs'
import {join} from 'node:path'

const dist = join(import.meta.dirname, '..', '..', 'dist', 'vendor')

describe('vendored bundles (scripts/vendor.js, run by npm run build)', () => {
  for (const [file, packages, names] of [
    ['kubernetes.js', ['@kubernetes/client-node'], ['KubeConfig', 'PortForward', 'AppsV1Api', 'KubernetesObjectApi']],
    ['gcs.js', ['@google-cloud/storage', 'google-auth-library'], ['Storage', 'PassThroughClient']],
  ] as const) {
    it(`dist/vendor/${file} is one self-contained file that exports ${names.join(', ')}`, async () => {
      const text = readFileSync(join(dist, file), 'utf8')
      // tsc's output would be a short re-export of the packages; the bundle holds their code.
      expect(text.length).to.be.greaterThan(100_000)
      for (const name of packages) expect(text).to.not.match(new RegExp(`(from|import)\\s*\\(?["']${name}["']`))
      const module = (await import(join(dist, file))) as Record<string, unknown>
      for (const name of names) expect(module[name], name).to.be.a('function')
    })
  }
})
