// Temporary directories for tests: made under the system temp directory, removed when the test
// that made them ends (pass or fail), so no run leaves files behind (some hold private keys).
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

/** What a test offers for clean-up: tap's `t` (or anything with `teardown`). */
export interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export interface TmpOptions {
  /**
   * Mode of the directory: 0755 by default (root's files must sit in a directory no one else can
   * write, see src/lib/safe-fs.ts); 0o1777 for one another user must write into, like /tmp.
   */
  readonly mode?: number;
}

/** A fresh directory `<tmp>/<prefix>XXXXXX`, removed with everything in it when `t` ends. */
export function tmpDir(t: Teardown, prefix: string, opts: TmpOptions = {}): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix.endsWith('-') ? prefix : `${prefix}-`));
  chmodSync(dir, opts.mode ?? 0o755);
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}
