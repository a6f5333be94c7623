/** Looking up the user the sidecar runs as (EXEC_USER): name or uid, through NSS (`getent`). */
import * as os from 'node:os';
import { AgentError } from '../lib/errors';
import type { Exec } from '../lib/exec';
import type { ChildUser } from './plan';

/** One `/etc/passwd`-format line: `name:x:uid:gid:gecos:home:shell`. */
export function parsePasswdLine(line: string): ChildUser | undefined {
  const f = line.trim().split(':');
  if (f.length < 7 || !/^\d+$/.test(f[2]!) || !/^\d+$/.test(f[3]!)) return undefined;
  return {
    name: f[0]!,
    uid: Number(f[2]),
    gid: Number(f[3]),
    home: f[5]! || '/',
    shell: f[6]! || '/bin/sh',
  };
}

/** Resolves `name` (or a numeric uid); AGENT_E_USER_UNKNOWN when there is no such user. */
export async function lookupUser(exec: Exec, name: string): Promise<ChildUser> {
  const r = await exec('getent', ['passwd', name], { timeoutMs: 10_000 });
  const u = r.code === 0 ? parsePasswdLine(r.stdout.split('\n')[0] ?? '') : undefined;
  if (u) return u;
  if (r.code === 0 || r.code === 2) {
    throw new AgentError(
      'AGENT_E_USER_UNKNOWN',
      `EXEC_USER: user "${name}" does not exist; create it (the istio-sidecar package creates istio-proxy) or set EXEC_USER`,
      { details: { user: name } },
    );
  }
  throw new AgentError(
    'AGENT_E_EXEC',
    `getent passwd ${name} exited ${r.code}: ${r.stderr.trim()}`,
  );
}

/** The user the agent runs as (used when not root, where no switch is possible). */
export function currentUser(): ChildUser {
  const u = os.userInfo();
  return { name: u.username, uid: u.uid, gid: u.gid, home: u.homedir, shell: u.shell ?? '/bin/sh' };
}
