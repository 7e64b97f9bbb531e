import {execFile} from 'node:child_process'
import {promisify} from 'node:util'

const run = promisify(execFile)

/** The commit checked out in `dir` and whether the tree has changes, or undefined outside a git work tree. */
export async function gitState(dir: string): Promise<{commit: string; dirty: boolean} | undefined> {
  try {
    const {stdout: commit} = await run('git', ['rev-parse', 'HEAD'], {cwd: dir, timeout: 5000})
    const {stdout: status} = await run('git', ['status', '--porcelain', '--untracked-files=no'], {cwd: dir, timeout: 5000})
    return {commit: commit.trim(), dirty: status.trim().length > 0}
  } catch {
    return undefined
  }
}
