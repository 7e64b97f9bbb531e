/**
 * What bin/run.js starts: oclif's entry, from the build's shared chunk, so
 * that the commands (each an entry point of the bundle, scripts/bundle.js)
 * and the CLI share one copy of oclif.
 */
export {execute} from '@oclif/core'
