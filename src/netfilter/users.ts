import { promises as fs } from 'node:fs';
import type { CaptureConfig } from '../config/types';
import { AgentError } from '../lib/errors';
import type { Exec } from '../lib/exec';
import { FALLBACK_PROXY_ID, type ProxyIds } from './plan';

export interface ResolvedIds {
  readonly ids: ProxyIds;
  /** Set when the default user is missing and 1.0's fallback (1337) is used. */
  readonly warning?: string;
}

/**
 * The uid and primary gid of ENVOY_USER, through NSS (`getent passwd`), so LDAP/sssd users work.
 * 1.0 used the uid as the gid too; we use the user's real group. A missing default user
 * (`istio-proxy`, not configured) falls back to 1337 as 1.0 did; a configured user that does not
 * exist is a configuration error naming where it was set.
 */
export async function resolveProxyIds(
  cfg: CaptureConfig,
  exec: Exec,
  passwdFile = '/etc/passwd',
): Promise<ResolvedIds> {
  // Fast path: a local user (the .deb creates istio-proxy with adduser) needs no extra program.
  const local = await fromPasswdFile(passwdFile, cfg.envoyUser);
  if (local) return { ids: local };
  const r = await exec('getent', ['passwd', cfg.envoyUser]);
  if (r.code === 0) {
    const fields = r.stdout.split('\n')[0]?.split(':') ?? [];
    const uid = Number(fields[2]);
    const gid = Number(fields[3]);
    if (
      fields.length >= 4 &&
      Number.isInteger(uid) &&
      Number.isInteger(gid) &&
      fields[2] !== '' &&
      fields[3] !== ''
    ) {
      return { ids: { uid, gid } };
    }
    throw new AgentError(
      'AGENT_E_EXEC',
      `getent passwd ${cfg.envoyUser} printed an unexpected line: ${r.stdout.trim()}`,
    );
  }
  if (r.code !== 2) {
    throw new AgentError(
      'AGENT_E_EXEC',
      `getent passwd ${cfg.envoyUser} exited ${r.code}: ${r.stderr.trim()}`,
    );
  }
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

/** Looks `user` (a name, or a uid when numeric) up in a passwd-format file; undefined if absent. */
export async function fromPasswdFile(file: string, user: string): Promise<ProxyIds | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  const numeric = /^\d+$/.test(user);
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length < 4 || (numeric ? f[2] !== user : f[0] !== user)) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (f[2] !== '' && f[3] !== '' && Number.isInteger(uid) && Number.isInteger(gid))
      return { uid, gid };
  }
  return undefined;
}
