import { promises as fs } from 'node:fs';

export interface UserIds {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/**
 * Looks a user up in the passwd database file (Node has no getpwnam). Local users only, which is
 * what a system user created by our package is. Returns undefined when there is no such user.
 */
export async function lookupUser(
  name: string,
  passwdFile = '/etc/passwd',
): Promise<UserIds | undefined> {
  let text: string;
  try {
    text = await fs.readFile(passwdFile, 'utf8');
  } catch {
    return undefined;
  }
  return parsePasswd(text, name);
}

export function parsePasswd(text: string, name: string): UserIds | undefined {
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 4) {
      const uid = Number(f[2]);
      const gid = Number(f[3]);
      if (Number.isInteger(uid) && Number.isInteger(gid)) return { name, uid, gid };
    }
  }
  return undefined;
}
