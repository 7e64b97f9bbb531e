import {homedir} from 'node:os'
import {join} from 'node:path'

/** Built test servers live outside the repo, keyed by version, and are reused across runs. */
export const TEST_CACHE = process.env.MLOPS_TEST_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'mlops-test')
export const TEST_BIN = join(TEST_CACHE, 'bin')
