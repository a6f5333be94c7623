/**
 * Users of this host, looked up in one place: the proxy user (ENVOY_USER) whose traffic capture
 * lets through and who owns key.pem, and the user the sidecar runs as (EXEC_USER). One lookup
 * with one error semantics: the local passwd file first (the package creates istio-proxy with
 * adduser, so no program is needed), then NSS through `getent passwd`, so LDAP/sssd users work.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import type { CaptureConfig } from '../config/types';
import { AgentError } from '../lib/errors';
import type { Exec } from '../lib/exec';

/** A passwd entry: what a process running as the user gets (ids, HOME, SHELL). */
export interface HostUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
  readonly shell: string;
}

export interface UserIds {
  readonly uid: number;
  readonly gid: number;
}

/** uid and gid 1337: what 1.0 used when the proxy user did not exist. */
export const FALLBACK_PROXY_ID = 1337;

/** How long `getent` may take (an NSS backend that does not answer). */
export const GETENT_TIMEOUT_MS = 10_000;

export const PASSWD_FILE = '/etc/passwd';

/**
 * One passwd-format line, `name:x:uid:gid:gecos:home:shell`; undefined when it is not one
 * (fewer than four fields, a uid or gid that is not a decimal number). A missing home is `/`, a
 * missing shell `/bin/sh`.
 */
export function parsePasswdLine(line: string): HostUser | undefined {
  const f = line.trim().split(':');
  if (f.length < 4 || !/^\d+$/.test(f[2]!) || !/^\d+$/.test(f[3]!)) return undefined;
  return {
    name: f[0]!,
    uid: Number(f[2]),
    gid: Number(f[3]),
    home: f[5] || '/',
    shell: f[6] || '/bin/sh',
  };
}

/** `user` (a name, or a uid when numeric) in passwd-format text; undefined if absent. */
export function findInPasswd(text: string, user: string): HostUser | undefined {
  const numeric = /^\d+$/.test(user);
  for (const line of text.split('\n')) {
    const u = parsePasswdLine(line);
    if (u && (numeric ? String(u.uid) === user : u.name === user)) return u;
  }
  return undefined;
}

/**
 * Looks `user` (a name, or a uid when numeric) up: in `passwdFile`, then through NSS (`getent
 * passwd`). Undefined when there is no such user; AGENT_E_EXEC when getent fails, takes longer
 * than GETENT_TIMEOUT_MS or prints something that is not a passwd line.
 */
export async function lookupUser(
  exec: Exec,
  user: string,
  passwdFile = PASSWD_FILE,
): Promise<HostUser | undefined> {
  const local = await fs.readFile(passwdFile, 'utf8').then(
    (text) => findInPasswd(text, user),
    () => undefined,
  );
  if (local) return local;
  const r = await exec('getent', ['passwd', user], { timeoutMs: GETENT_TIMEOUT_MS });
  if (r.code === 2) return undefined; // getent: key not found
  if (r.code !== 0) {
    throw new AgentError(
      'AGENT_E_EXEC',
      `getent passwd ${user} exited ${r.code}: ${r.stderr.trim()}`,
    );
  }
  const u = parsePasswdLine(r.stdout.split('\n')[0] ?? '');
  if (u) return u;
  throw new AgentError(
    'AGENT_E_EXEC',
    `getent passwd ${user} printed an unexpected line: ${r.stdout.trim()}`,
  );
}

export interface ResolvedIds {
  readonly ids: UserIds;
  /** Set when the default user is missing and 1.0's fallback (1337) is used. */
  readonly warning?: string;
}

/**
 * The uid and primary gid of ENVOY_USER, for capture (its traffic is let through) and the owner
 * of key.pem. 1.0 used the uid as the gid too; this is the user's real group. A missing default
 * user (`istio-proxy`, not configured) falls back to 1337 as 1.0 did; a configured user that does
 * not exist is a configuration error naming where it was set.
 */
export async function resolveProxyIds(
  cfg: Pick<CaptureConfig, 'envoyUser' | 'envoyUserOrigin'>,
  exec: Exec,
  passwdFile = PASSWD_FILE,
): Promise<ResolvedIds> {
  const u = await lookupUser(exec, cfg.envoyUser, passwdFile);
  if (u) return { ids: { uid: u.uid, gid: u.gid } };
  if (cfg.envoyUserOrigin) {
    throw new AgentError(
      'AGENT_E_USER_UNKNOWN',
      `user "${cfg.envoyUser}" does not exist; create it (the sidecar runs as this user) or fix ENVOY_USER`,
      { origin: cfg.envoyUserOrigin },
    );
  }
  return {
    ids: { uid: FALLBACK_PROXY_ID, gid: FALLBACK_PROXY_ID },
    warning: `user "${cfg.envoyUser}" does not exist; excluding uid and gid ${FALLBACK_PROXY_ID} from capture as Istio 1.0 did`,
  };
}

/** EXEC_USER, the user the sidecar runs as; AGENT_E_USER_UNKNOWN when there is no such user. */
export async function lookupExecUser(
  exec: Exec,
  name: string,
  passwdFile = PASSWD_FILE,
): Promise<HostUser> {
  const u = await lookupUser(exec, name, passwdFile);
  if (u) return u;
  throw new AgentError(
    'AGENT_E_USER_UNKNOWN',
    `EXEC_USER: user "${name}" does not exist; create it (the istio-sidecar package creates istio-proxy) or set EXEC_USER`,
    { details: { user: name } },
  );
}

/** The user the agent runs as (used when not root, where no switch is possible). */
export function currentUser(): HostUser {
  const u = os.userInfo();
  return { name: u.username, uid: u.uid, gid: u.gid, home: u.homedir, shell: u.shell ?? '/bin/sh' };
}
