import {expect} from 'chai'
import {existsSync, mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {ExitCode} from '../../src/errors.js'
import {runCli} from '../helpers/cli.js'
import {fixture, tempDir} from '../helpers/stores.js'

/**
 * CI-native output under GitHub Actions (GITHUB_ACTIONS=true, as the runner sets it): failures
 * as `::error::` annotations, deploy's markdown summary in $GITHUB_STEP_SUMMARY, and --json
 * output unchanged. Run against the local target, with the real CLI.
 */
describe('under GitHub Actions: ::error:: annotations and the deploy step summary', function () {
  this.timeout(120_000)
  let project: string
  let summary: string
  const actions = () => ({GITHUB_ACTIONS: 'true', GITHUB_STEP_SUMMARY: summary})
  const mlops = async (args: string[], env: Record<string, string> = actions()) => runCli(args, env, project)

  before(async () => {
    project = tempDir()
    writeFileSync(join(project, 'mlops.yaml'), 'name: iris\nmodel:\n  name: iris\n')
    const pushed = await mlops(['model', 'push', fixture('iris_svc.onnx'), '--labels', fixture('iris_labels.json')], {})
    expect(pushed.code, pushed.stderr).to.equal(0)
  })

  beforeEach(() => {
    summary = join(tempDir(), 'step-summary.md')
  })

  after(async () => {
    await mlops(['delete'], {})
  })

  it('a deploy that works appends a summary (model, sha256, target, outcome) and prints no annotation', async () => {
    writeFileSync(summary, '# earlier step\n')
    const deployed = await mlops(['deploy', '--model', 'iris@1', '--json'])
    expect(deployed.code, deployed.stderr).to.equal(0)
    const result = JSON.parse(deployed.stdout) as {sha256: string; url: string}
    const text = readFileSync(summary, 'utf8')
    expect(text.startsWith('# earlier step\n'), 'appended, not replaced').to.equal(true)
    expect(text).to.contain('### ✅ mlops deploy: iris@1\n')
    expect(text).to.contain('| target | local |\n')
    expect(text).to.contain('| model | `iris@1` |\n')
    expect(text).to.contain(`| sha256 | \`${result.sha256}\` |\n`)
    expect(text).to.match(new RegExp(`\\| outcome \\| serving at ${result.url.replaceAll('.', '\\.')} in \\d+\\.\\d s \\|\\n`))
    expect(deployed.stdout + deployed.stderr).to.not.contain('::error')
  })

  it('bad input: a version that does not exist → exit 3, one ::error:: line on stdout titled by the command, a ❌ summary', async () => {
    const failed = await mlops(['deploy', '--model', 'iris@9'])
    expect(failed.code, failed.stderr).to.equal(ExitCode.NOT_FOUND)
    const annotations = failed.stdout.split('\n').filter(line => line.startsWith('::error'))
    expect(annotations).to.have.length(1)
    expect(annotations[0]).to.match(/^::error title=mlops deploy::.*iris.*9/)
    expect(failed.stderr).to.match(/^Error: /)
    const text = readFileSync(summary, 'utf8')
    expect(text).to.contain('### ❌ mlops deploy: iris@9\n')
    expect(text).to.match(/\| outcome \| failed: .*9.* \|\n/)
  })

  it('bad input under --json: stdout is the error object alone (unchanged), the annotation goes to stderr', async () => {
    const failed = await mlops(['deploy', '--model', 'iris@9', '--json'])
    expect(failed.code).to.equal(ExitCode.NOT_FOUND)
    expect(JSON.parse(failed.stdout)).to.have.property('error')
    expect(failed.stderr.split('\n').filter(line => line.startsWith('::error title=mlops deploy::'))).to.have.length(1)
  })

  it('bad input: a message and hint over two lines and a credential in a flag → one annotation line, %0A-escaped, the password not in it', async () => {
    const failed = await mlops(['model', 'list', '--store', 'gs://some-bucket', '--gcs-endpoint', 'http://ci-user:ci-pa55word@127.0.0.1:1'])
    expect(failed.code).to.equal(ExitCode.USAGE)
    const annotation = failed.stdout.split('\n').find(line => line.startsWith('::error title=mlops model list::'))
    expect(annotation, failed.stdout).to.not.equal(undefined)
    expect(annotation).to.contain('%0A')
    expect(failed.stdout + failed.stderr).to.not.contain('ci-pa55word')
  })

  it('outside GitHub Actions: no annotation and no summary, whatever GITHUB_STEP_SUMMARY says', async () => {
    const failed = await mlops(['deploy', '--model', 'iris@9'], {GITHUB_STEP_SUMMARY: summary})
    expect(failed.code).to.equal(ExitCode.NOT_FOUND)
    expect(failed.stdout).to.not.contain('::error')
    expect(existsSync(summary)).to.equal(false)
  })

  it('bad input: GITHUB_STEP_SUMMARY that is a folder → the deploy still works (exit 0), one warning on stderr', async () => {
    mkdirSync(summary)
    const deployed = await mlops(['deploy', '--model', 'iris@1'])
    expect(deployed.code, deployed.stderr).to.equal(0)
    expect(deployed.stderr).to.contain('Warning: cannot write the step summary to GITHUB_STEP_SUMMARY (EISDIR)')
  })
})
