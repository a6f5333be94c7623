import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { readFileState, readFollowing, under, type FileState } from './files';
import {
  DHCLIENT_CONF,
  DHCLIENT_LEASE_DIR,
  RESOLV_CONF,
  RESOLVED_DROP_IN,
  RESOLVED_RUN_DIR,
  type ResolverFacts,
} from './resolver';
import { dropInPath, type DnsSettings } from './settings';
import { readDnsState, statePath, type DnsState } from './state';

/** Everything the plan depends on, as read from the host (probeHost); the plan's only input. */
export interface HostFacts {
  readonly dropIn: FileState;
  readonly resolver: ResolverFacts;
  readonly state: DnsState | undefined;
}

/** The first non-empty dhclient lease file (host path), when dhclient manages this host. */
async function firstLease(root: string): Promise<string | undefined> {
  let names: string[];
  try {
    names = await fs.readdir(under(root, DHCLIENT_LEASE_DIR));
  } catch {
    return undefined;
  }
  for (const n of names.sort()) {
    if (!/^dhclient.*\.leases?$/.test(n)) continue;
    const p = path.join(DHCLIENT_LEASE_DIR, n);
    const st = await fs.stat(under(root, p)).catch(() => undefined);
    if (st && st.isFile() && st.size > 0) return p;
  }
  return undefined;
}

/** Reads everything the plan depends on. Changes nothing. */
export async function probeHost(s: DnsSettings, root: string): Promise<HostFacts> {
  const resolvConf = await readFileState(under(root, RESOLV_CONF));
  const resolver: ResolverFacts = {
    resolvConf,
    resolvConfFinal:
      resolvConf.kind === 'symlink' ? await readFollowing(root, RESOLV_CONF) : undefined,
    dhclientConf: await readFileState(under(root, DHCLIENT_CONF)),
    dhclientLease: await firstLease(root),
    resolvedRunning: await fs.stat(under(root, RESOLVED_RUN_DIR)).then(
      (st) => st.isDirectory(),
      () => false,
    ),
    resolvedDropIn: await readFileState(under(root, RESOLVED_DROP_IN)),
  };
  return {
    dropIn: await readFileState(under(root, dropInPath(s))),
    resolver,
    state: await readDnsState(statePath(root, s.stateDir)),
  };
}
