import {Ajv, type ValidateFunction} from 'ajv'
import {readFileSync} from 'node:fs'
import {packagePath} from '../util/package-root.js'

/**
 * The mlops.yaml validator. This version compiles schemas/mlops.schema.json
 * with ajv when first imported (sources through tsx, bin/dev.js); the build
 * replaces its output with ajv's standalone code for the same schema and
 * options (scripts/bundle.js), so a command neither loads ajv nor compiles
 * the schema: 60 ms less on every command run in a project.
 */
export const AJV_OPTIONS = {allErrors: true, strict: false, verbose: true} as const
const validate: ValidateFunction = new Ajv(AJV_OPTIONS).compile(
  JSON.parse(readFileSync(packagePath('schemas', 'mlops.schema.json'), 'utf8')),
)
export default validate
