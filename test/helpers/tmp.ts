// Temporary directories for tests: made under the system temp directory, removed when the test
// that made them ends (pass or fail), so no run leaves files behind (some hold private keys).
// A test process that ends before its teardown ran (tap's timeout, an uncaught error) removes
// what is left on its way out. `scripts/check-tmp-leaks.sh` checks that a run leaves nothing.
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

/** Directories made and not yet removed. */
const live = new Set<string>();
let hooked = false;

function remove(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  live.delete(dir);
}

/** A fresh directory `<tmp>/<prefix>XXXXXX`, removed with everything in it when `t` ends. */
export function tmpDir(t: Teardown, prefix: string, opts: TmpOptions = {}): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix.endsWith('-') ? prefix : `${prefix}-`));
  if (!hooked) {
    process.once('exit', () => {
      for (const d of [...live]) remove(d);
    });
    hooked = true;
  }
  live.add(dir);
  t.teardown(() => {
    remove(dir);
  });
  chmodSync(dir, opts.mode ?? 0o755);
  return dir;
}

/** A `Teardown` for code outside a tap test (a bench): `run()` does what was registered, last first. */
export function teardowns(): Teardown & { run(): Promise<void> } {
  const fns: (() => void | Promise<void>)[] = [];
  return {
    teardown: (fn) => {
      fns.push(fn);
    },
    run: async () => {
      for (let fn = fns.pop(); fn; fn = fns.pop()) await fn();
    },
  };
}
