import type {Command} from '@oclif/core'

import {type AnyTarget, type TargetIO, type TargetName, TARGETS, openTarget, targetOf} from '../targets/target.js'
import {BaseCommand} from './base-command.js'
import {refuseForeignFlags} from './flag-rules.js'

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
      note: message => this.logToStderr(message),
      progress: () => this.progress(),
      json: this.jsonEnabled(),
    }
  }
}
