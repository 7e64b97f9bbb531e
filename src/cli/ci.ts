import {appendFileSync} from 'node:fs'

import type {DeployResult} from '../targets/target.js'
import {redact} from '../util/redact.js'

/**
 * Output for the CI system a command runs in. Under GitHub Actions (GITHUB_ACTIONS=true) a
 * failure is also an `::error::` annotation, and deploy appends a markdown summary to
 * $GITHUB_STEP_SUMMARY. Nothing changes elsewhere, and --json stays as it is: there the
 * annotation goes to stderr, which the runner reads for workflow commands too.
 */
export function onGitHubActions(): boolean {
  return process.env.GITHUB_ACTIONS === 'true'
}

/** A workflow command's data: %, CR and LF escaped as the runner expects. */
function escapeData(text: string): string {
  return text.replaceAll('%', '%25').replaceAll('\r', '%0D').replaceAll('\n', '%0A')
}

/** A workflow command's property value: also : and , escaped. */
function escapeProperty(text: string): string {
  return escapeData(text).replaceAll(':', '%3A').replaceAll(',', '%2C')
}

/** The failure as an error annotation titled by the command (`mlops deploy`), redacted. */
export function annotateFailure(command: string, message: string, suggestion: string | undefined, options: {json: boolean}): void {
  if (!onGitHubActions()) return
  const text = redact(suggestion ? `${message}\n${suggestion}` : message)
  const line = `::error title=${escapeProperty(redact(`mlops ${command}`))}::${escapeData(text)}\n`
  if (options.json) process.stderr.write(line)
  else process.stdout.write(line)
}

export interface DeploySummary {
  command: string
  ok: boolean
  target: string
  model?: string
  sha256?: string
  images?: Record<string, string>
  delivery?: string
  outcome: string
}

/** One markdown table cell: no pipe, no newline, code where it is an identifier. */
function cell(text: string, code = false): string {
  const clean = redact(text)
    .replaceAll('|', '\\|')
    .replaceAll(/[\r\n]+/g, ' ')
  return code ? `\`${clean.replaceAll('`', "'")}\`` : clean
}

/**
 * The deploy's summary, appended to $GITHUB_STEP_SUMMARY (the runner renders it on the run's
 * page). A summary that cannot be written never fails the deploy: it is said once on stderr.
 */
export function writeStepSummary(summary: DeploySummary): void {
  const file = process.env.GITHUB_STEP_SUMMARY
  if (!onGitHubActions() || !file) return
  const rows: Array<[string, string]> = [
    ['target', cell(summary.target)],
    ...(summary.model ? [['model', cell(summary.model, true)] as [string, string]] : []),
    ...(summary.sha256 ? [['sha256', cell(summary.sha256, true)] as [string, string]] : []),
    ...Object.entries(summary.images ?? {}).map(([name, ref]) => [`image (${cell(name)})`, cell(ref, true)] as [string, string]),
    ...(summary.delivery ? [['delivery', cell(summary.delivery)] as [string, string]] : []),
    ['outcome', cell(summary.outcome)],
  ]
  const markdown = [
    `### ${summary.ok ? '✅' : '❌'} ${cell(summary.command)}${summary.model ? `: ${cell(summary.model)}` : ''}`,
    '',
    '| | |',
    '|---|---|',
    ...rows.map(([key, value]) => `| ${key} | ${value} |`),
    '',
    '',
  ].join('\n')
  try {
    appendFileSync(file, markdown)
  } catch (error) {
    process.stderr.write(
      `Warning: cannot write the step summary to GITHUB_STEP_SUMMARY (${(error as NodeJS.ErrnoException).code ?? 'error'})\n`,
    )
  }
}

/** What the step summary says of a deploy that worked, from its --json result. */
export function deploySummary(target: string, outcome: DeployResult): DeploySummary {
  const cluster = outcome.target === 'k8s' ? outcome : undefined
  const said = [
    cluster?.dryRun ? `dry run (${cluster.dryRun})` : undefined,
    cluster?.rollout ? `rolled out: ${cluster.rollout}` : undefined,
    cluster?.revision ? `revision ${cluster.revision}` : undefined,
    outcome.target === 'k8s' ? undefined : `serving at ${outcome.url}`,
    outcome.target !== 'k8s' && outcome.unchanged ? 'unchanged' : undefined,
  ].filter(Boolean)
  return {
    command: 'mlops deploy',
    ok: true,
    target,
    model: outcome.model,
    sha256: outcome.sha256,
    images: outcome.target === 'local' ? undefined : outcome.images,
    delivery: cluster ? `${cluster.delivery.kind} (${cluster.delivery.reason})` : undefined,
    outcome: `${said.join(', ') || 'deployed'} in ${outcome.seconds.toFixed(1)} s`,
  }
}
