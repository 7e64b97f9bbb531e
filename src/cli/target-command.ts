import type {Command} from '@oclif/core'

import {UsageError} from '../errors.js'
import {type AnyTarget, type Endpoint, type TargetIO, type TargetName, TARGETS, openTarget, targetOf} from '../targets/target.js'
import {BaseCommand} from './base-command.js'
import {fromEnvironment, refuseForeignFlags} from './flag-rules.js'

interface ServerFlags {
  url?: string
  target?: string
  namespace?: string
  context?: string
}

/**
 * The commands that act where a model is deployed (deploy, status, delete,
 * rollback, predict): the target from --target or mlops.yaml, the other
 * targets' flags refused, and the target's service with this command's output.
 */
export abstract class TargetCommand<T extends typeof Command> extends BaseCommand<T> {
  /** The chosen target, after refusing the flags that belong to another one. */
  protected async target(): Promise<{name: TargetName; target: AnyTarget}> {
    const name = targetOf(this.project, (this.flags as {target?: string}).target)
    this.refuseForeign(name)
    return {name, target: await this.open(name)}
  }

  protected refuseForeign(where: string, accepts: readonly string[] = TARGETS[where as TargetName]?.flags ?? []): void {
    refuseForeignFlags(this.flags, this.ctor.flags, where, accepts)
  }

  protected async open(name: TargetName): Promise<AnyTarget> {
    return openTarget(name, {project: this.project, io: this.io()})
  }

  /** This command's output, for the services it calls. */
  protected io(): TargetIO {
    return {
      log: message => this.log(message),
      note: message => this.note(message),
      progress: () => this.progress(),
      json: this.jsonEnabled(),
    }
  }

  /**
   * The model server of the commands that send it rows (predict, model compare): --url as it is,
   * else the target's endpoint (k8s: a port-forward with `connections` tunnels).
   */
  protected async serverEndpoint(connections: number): Promise<Endpoint> {
    const url = this.explicitUrl()
    if (url) {
      this.refuseForeign('--url', [])
      return {url, close: async () => {}}
    }

    const {target} = await this.target()
    const {namespace, context} = this.flags as ServerFlags
    return target.endpoint({namespace, context, connections})
  }

  /**
   * --url, unless a --target flag overrides a URL from its environment variable. Both
   * given as flags name two servers: exit 2. A value from the environment
   * (MLOPS_TARGET exported for deploy) never conflicts with a flag.
   */
  protected explicitUrl(): string | undefined {
    const {url, target} = this.flags as ServerFlags
    if (url === undefined || target === undefined) return url
    const definitions = this.ctor.flags as Record<string, {env?: string}>
    const urlFromEnv = fromEnvironment(definitions.url, url)
    const targetFromEnv = fromEnvironment(definitions.target, target)
    if (!urlFromEnv && !targetFromEnv) throw new UsageError('--url and --target each name a server: pass one of them')
    return urlFromEnv && !targetFromEnv ? undefined : url
  }
}
