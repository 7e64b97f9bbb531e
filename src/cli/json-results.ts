/**
 * What each command prints under --json, by command id: the one list that scripts/json-schemas.js
 * turns into schemas/results.schema.json and docs/json.md, and that the tests hold every --json
 * output to. Type-only: nothing here is loaded at run time.
 */
import type {BuiltImages} from '../commands/image/build.js'
import type {CheckResult} from '../commands/image/check.js'
import type {PushedImages} from '../commands/image/push.js'
import type {PullSecretResult} from '../commands/image/secret.js'
import type {ListResult} from '../commands/model/list.js'
import type {RemoveResult} from '../commands/model/rm.js'
import type {ModelDetails} from '../commands/model/show.js'
import type {RenderCommandResult} from '../commands/render.js'
import type {PublishResult} from '../images/publish.js'
import type {CompareResult} from '../predict/compare.js'
import type {PredictResult} from '../predict/predict.js'
import type {ReferenceResult} from '../predict/reference.js'
import type {ServeResult} from '../serve/serve.js'
import type {InitResult} from '../scaffold/init.js'
import type {AliasResult} from '../store/aliases.js'
import type {PushResult} from '../store/commit.js'
import type {PullResult} from '../store/pull.js'
import type {WarmResult} from '../targets/k8s/warm.js'
import type {AbortResult, DeleteResult, DeployResult, RollbackResult, StatusResult} from '../targets/target.js'
import type {ErrorJson} from './failure.js'

export interface CommandResults {
  init: InitResult
  'model push': PushResult
  'model list': ListResult
  'model show': ModelDetails
  'model pull': PullResult
  'model rm': RemoveResult
  'model publish': PublishResult
  'model alias set': AliasResult
  'model alias rm': AliasResult
  'model reference add': ReferenceResult
  'model compare': CompareResult
  'model warm': WarmResult
  'image build': BuiltImages
  'image push': PushedImages
  'image check': CheckResult
  'image secret': PullSecretResult
  render: RenderCommandResult
  deploy: DeployResult
  status: StatusResult
  rollback: RollbackResult
  abort: AbortResult
  promote: DeployResult
  delete: DeleteResult
  predict: PredictResult
  serve: ServeResult
}

/** Any command that fails prints this instead (and exits with error.exitCode). */
export type FailureResult = ErrorJson

export interface JsonOutput {
  commands: CommandResults
  failure: FailureResult
}
