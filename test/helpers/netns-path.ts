import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Netns } from './netns';

/** The programs capture runs (backend detection, save, restore, TPROXY routing, nft tables). */
const PROGRAMS = [
  'iptables',
  'iptables-nft-save',
  'iptables-nft-restore',
  'ip6tables-nft-save',
  'ip6tables-nft-restore',
  'iptables-legacy-save',
  'iptables-legacy-restore',
  'ip6tables-legacy-save',
  'ip6tables-legacy-restore',
  'nft',
  'ip',
];

const DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/bin'];

/**
 * A directory to put first on a real agent's PATH: each of capture's programs, run inside `ns`.
 * The agent itself stays on the host's network (so it reaches a CA on loopback) while its rules
 * land in the test namespace. `restoreDelayS` slows iptables-*-restore (a busy host).
 */
export function netnsPath(dir: string, ns: Netns, restoreDelayS = 0): string {
  mkdirSync(dir, { recursive: true });
  const ip = DIRS.map((d) => path.join(d, 'ip')).find((f) => existsSync(f));
  if (!ip) throw new Error('ip (iproute2) is not installed');
  for (const p of PROGRAMS) {
    const real = DIRS.map((d) => path.join(d, p)).find((f) => existsSync(f));
    if (!real) continue;
    const slow = restoreDelayS > 0 && p.endsWith('-restore') ? `sleep ${restoreDelayS}\n` : '';
    const file = path.join(dir, p);
    writeFileSync(file, `#!/bin/sh\n${slow}exec ${ip} netns exec ${ns.name} ${real} "$@"\n`);
    chmodSync(file, 0o755);
  }
  return dir;
}
