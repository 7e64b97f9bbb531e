/** deploy --canary's plan: the steps and the gates, as flags and mlops.yaml give them (no cluster code: the command loads it). */
import type {MlopsYaml} from '../config/load.js'
import {UsageError} from '../errors.js'

export interface CanaryGates {
  /** Least share of reference rows on which the canary's label equals the stable's (needs a reference set). */
  minAgreement?: number
  /** Largest canary error rate (5xx) above the stable's, e.g. 0.01: one point. */
  maxErrorRateIncrease: number
  /** Largest canary p99 over the stable's (from the latency histograms; judged from 50 requests on each track). */
  maxP99Ratio: number
}

export interface CanaryPlan {
  /** A shadow phase first (deploy --shadow): the share of the stable's requests mirrored to the candidate. */
  shadow?: {sample: number}
  /** Percent of pods at each step, ascending; 100 (promotion) is the end ([100]: --shadow alone, promoted after it). */
  steps: number[]
  intervalMs: number
  gates: CanaryGates
  /** deploy --pause: stop after each step that passed; mlops promote goes on, mlops abort removes the canary. */
  pause?: boolean
  /** From deploy.strategy in mlops.yaml, not a flag: a first deploy (no stable yet) goes all at once instead of exit 3. */
  fromConfig?: true
}

type PlanFlags = Parameters<typeof canaryPlan>[1]
type Deploy = NonNullable<MlopsYaml['deploy']>

/**
 * deploy's plan: the flags' (canaryPlan), or, with none of --canary, --steps, --shadow and
 * --shadow-sample, deploy.strategy's in mlops.yaml, where it applies: the k8s target, and not
 * --dry-run, --diff or --all-at-once (the other targets and a preview deploy all at once).
 */
export function deployPlan(
  config: Deploy | undefined,
  flags: PlanFlags & {'all-at-once'?: boolean},
  where: {target: string; preview: boolean},
): CanaryPlan | undefined {
  const chosen = flags.canary || flags.steps !== undefined || flags.shadow || flags['shadow-sample'] !== undefined
  const strategy = config?.strategy ?? 'all-at-once'
  if (chosen || flags['all-at-once'] || strategy === 'all-at-once' || where.target !== 'k8s' || where.preview)
    return canaryPlan(config?.canary, flags)
  const plan = canaryPlan(config?.canary, {...flags, ...(strategy === 'canary' ? {canary: true} : {shadow: true})})
  return plan && {...plan, fromConfig: true}
}

/** Parses the steps as given (flag or mlops.yaml): percents in (0, 100], ascending; 100 is added when missing. */
export function parseSteps(values: number[]): number[] {
  const steps = values.filter(step => step !== 100)
  for (const [index, step] of steps.entries()) {
    if (!Number.isFinite(step) || step <= 0 || step >= 100) throw new Error(`step ${step} is not a percent between 0 and 100`)
    if (index > 0 && step <= steps[index - 1]) throw new Error('steps must go up')
  }

  return [...steps, 100]
}

/**
 * The plan (undefined without --canary, --steps or --shadow): flags over deploy.canary in
 * mlops.yaml over the defaults, each checked. --shadow alone is a shadow phase, then the promotion;
 * with --canary (or deploy.canary.shadow), the shadow comes first, then the steps.
 */
export function canaryPlan(
  config: NonNullable<NonNullable<MlopsYaml['deploy']>['canary']> | undefined,
  flags: {
    canary?: boolean
    shadow?: boolean
    'shadow-sample'?: string
    pause?: boolean
    steps?: string
    interval?: number
    'min-agreement'?: string
    'max-error-rate-increase'?: string
    'max-p99-ratio'?: string
  },
): CanaryPlan | undefined {
  if (!flags.canary && flags.steps === undefined && !flags.shadow && flags['shadow-sample'] === undefined) {
    const gate = (['interval', 'min-agreement', 'max-error-rate-increase', 'max-p99-ratio'] as const).find(
      flag => flags[flag] !== undefined,
    )
    if (gate)
      throw new UsageError(`--${gate} is a progressive-delivery setting: it needs --canary or --shadow`, {
        suggestion: `mlops deploy --canary --${gate} ...`,
      })
    return undefined
  }

  const number = (flag: string, text: string | undefined, fallback: number, max = 1): number => {
    if (text === undefined) return fallback
    const value = Number(text)
    if (text.trim() === '' || !Number.isFinite(value) || value < 0 || value > max)
      throw new UsageError(`--${flag} "${text.slice(0, 40)}" is not a number from 0 to ${max}`)
    return value
  }

  const withSteps = flags.canary || flags.steps !== undefined
  if (flags.pause && !withSteps)
    throw new UsageError('--pause stops between canary steps: it needs --canary', {suggestion: 'mlops deploy --canary --pause ...'})
  const shadowFirst = flags.shadow || (withSteps && config?.shadow === true) || flags['shadow-sample'] !== undefined
  let steps: number[] = [100]
  if (withSteps)
    try {
      steps = parseSteps(
        flags.steps === undefined
          ? (config?.steps ?? [10, 50])
          : flags.steps.split(',').map(part => (part.trim() === '' ? Number.NaN : Number(part))),
      )
    } catch (error) {
      throw new UsageError(`--steps "${(flags.steps ?? config?.steps?.join(','))?.slice(0, 60)}": ${(error as Error).message}`, {
        suggestion: 'e.g. --steps 10,50',
      })
    }

  const sample = number('shadow-sample', flags['shadow-sample'], config?.shadowSample ?? 0.1)
  if (shadowFirst && sample === 0)
    throw new UsageError(`--shadow-sample 0 mirrors nothing`, {suggestion: 'a share above 0, e.g. --shadow-sample 0.1'})
  return {
    ...(shadowFirst && {shadow: {sample}}),
    ...(flags.pause && {pause: true}),
    steps,
    intervalMs: flags.interval ?? (config?.intervalSeconds ?? 30) * 1000,
    gates: {
      minAgreement: number('min-agreement', flags['min-agreement'], config?.minAgreement ?? 0.99),
      maxErrorRateIncrease: number('max-error-rate-increase', flags['max-error-rate-increase'], config?.maxErrorRateIncrease ?? 0.01),
      maxP99Ratio: number('max-p99-ratio', flags['max-p99-ratio'], config?.maxP99Ratio ?? 3, 1000),
    },
  }
}
