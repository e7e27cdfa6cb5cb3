// The commit results were made at, recorded beside them so a number can be traced to its code.
import { execFileSync } from 'node:child_process';

/** HEAD of the git checkout at cwd, or "unknown" outside one. */
export function gitCommit(cwd = process.cwd()): string {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

/** Whether tracked files differ from HEAD (results then come from code no commit holds); false outside a checkout. */
export function workTreeChanged(cwd = process.cwd()): boolean {
  try {
    return execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
  } catch {
    return false;
  }
}
