import type { Test } from 'tap';

export const isRoot = process.getuid?.() === 0;

/**
 * For root-only test files: call at the top; when not root it records one clear skip line and
 * returns false, so the file ends without running anything.
 */
export function requireRoot(t: Test, what: string): boolean {
  if (isRoot) return true;
  t.comment(
    `skipped: ${what} needs root (network namespaces / system changes); run the tests as root`,
  );
  t.pass(`skipped: ${what} needs root`, { skip: `${what} needs root` });
  return false;
}
