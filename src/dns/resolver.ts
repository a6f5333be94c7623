import type { DnsResolverMode } from '../config/types';
import { MANAGED_MARK, RESOLVED_UPLINK_RESOLV_CONF } from './render';
import { text, type FileState } from './files';

/**
 * Pointing the host's resolver at dnsmasq on 127.0.0.1: which setup the host has, and the
 * smallest file change that does it. Pure: host facts in, edits out.
 */

export const RESOLV_CONF = '/etc/resolv.conf';
export const DHCLIENT_CONF = '/etc/dhcp/dhclient.conf';
export const RESOLVED_DROP_IN = '/etc/systemd/resolved.conf.d/istio-node-agent.conf';
/** Where dhclient keeps its leases on Debian (isc-dhcp-client). */
export const DHCLIENT_LEASE_DIR = '/var/lib/dhcp';
/** Exists while systemd-resolved runs. */
export const RESOLVED_RUN_DIR = '/run/systemd/resolve';

const UNDO_HINT = 'undo: istio-node-agent dns clean';

/** Put first in resolv.conf: the C library asks dnsmasq first and the original servers after. */
export const RESOLV_CONF_BLOCK = `# Added by istio-node-agent: resolve through dnsmasq (${UNDO_HINT})\nnameserver 127.0.0.1\n`;

/** What setupIstioVM.sh added to dhclient.conf, with a comment saying who added it. */
export const DHCLIENT_BLOCK = `# Added by istio-node-agent: resolve through dnsmasq (${UNDO_HINT})\nprepend domain-name-servers 127.0.0.1;\n`;

export type ResolverKind = Exclude<DnsResolverMode, 'auto'>;

/** What the host looks like, as far as name resolution goes. */
export interface ResolverFacts {
  readonly resolvConf: FileState;
  /** When resolv.conf is a symlink: where the chain of links ends, and what is there. */
  readonly resolvConfFinal: { readonly hostPath: string; readonly state: FileState } | undefined;
  readonly dhclientConf: FileState;
  /** A dhclient lease file (host path) when dhclient manages this host's addresses. */
  readonly dhclientLease: string | undefined;
  readonly resolvedRunning: boolean;
  readonly resolvedDropIn: FileState;
}

export interface ResolverChoice {
  readonly kind: ResolverKind;
  /** Why: what was detected, or that the operator chose it. */
  readonly reason: string;
  /** Set when `auto` found a setup it leaves alone, so the host does not ask dnsmasq. */
  readonly unwired?: true;
}

/** A change to one file: its state now and the bytes it gets. */
export interface FileEdit {
  readonly path: string;
  readonly action: 'create' | 'prepend' | 'append' | 'replace' | 'replace-symlink';
  readonly before: FileState;
  readonly after: string;
  /** Mode and owner of the new file: the old file's when there was one. */
  readonly mode: number;
  readonly uid: number | undefined;
  readonly gid: number | undefined;
  /** The text inserted into a file that is not ours, so undo can take out exactly that. */
  readonly block: string | undefined;
}

export interface ResolverPlan extends ResolverChoice {
  /** Files this setup manages; earlier changes to other files are undone. */
  readonly owned: readonly string[];
  readonly edits: readonly FileEdit[];
  /** systemd-resolved must re-read its configuration after the edits. */
  readonly reloadResolved: boolean;
  /** Set for systemd-resolved: dnsmasq's upstream list (see render.ts). */
  readonly upstreamResolvFile: string | undefined;
  /** Things the operator should know (shown by `dns plan`, logged by apply). */
  readonly notes: readonly string[];
}

/** What resolved should route to dnsmasq. */
export interface Routing {
  /** The forwarded domain and every name with a fixed address. */
  readonly domains: readonly string[];
}

export function isResolvedPath(p: string): boolean {
  return p.startsWith('/run/systemd/resolve/') || /\/lib\/systemd\/resolv\.conf$/.test(p);
}

export function isResolvconfPath(p: string): boolean {
  return p.startsWith('/run/resolvconf/') || p.startsWith('/etc/resolvconf/run/');
}

/** The first `nameserver` of resolv.conf text (comments start with # or ;). */
export function firstNameserver(resolvConf: string): string | undefined {
  for (const line of resolvConf.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m) return m[1];
  }
  return undefined;
}

export function nameservers(resolvConf: string): string[] {
  return [...resolvConf.matchAll(/^\s*nameserver\s+(\S+)/gm)].map((m) => m[1]!);
}

export function hasDhclientPrepend(conf: string): boolean {
  return /^\s*prepend\s+domain-name-servers\s+127\.0\.0\.1\s*;/m.test(conf);
}

/** `auto` looks at /etc/resolv.conf first, then at dhclient. */
export function chooseResolver(mode: DnsResolverMode, f: ResolverFacts): ResolverChoice {
  if (mode !== 'auto') return { kind: mode, reason: `ISTIO_DNS_RESOLVER=${mode}` };
  const rc = f.resolvConf;
  if (rc.kind === 'symlink') {
    const end = f.resolvConfFinal?.hostPath ?? rc.target;
    if (isResolvedPath(end))
      return { kind: 'resolved', reason: `${RESOLV_CONF} links to ${end} (systemd-resolved)` };
    if (isResolvconfPath(end)) {
      return { kind: 'resolvconf', reason: `${RESOLV_CONF} links to ${end} (resolvconf)` };
    }
    return {
      kind: 'none',
      reason:
        `${RESOLV_CONF} links to ${end}, which another program writes; left alone ` +
        `(set ISTIO_DNS_RESOLVER=resolv.conf to replace the link with a file)`,
      unwired: true,
    };
  }
  if (rc.kind === 'absent') {
    return { kind: 'none', reason: `no ${RESOLV_CONF}: the C library already asks 127.0.0.1` };
  }
  const ns = firstNameserver(text(rc) ?? '');
  if (f.resolvedRunning && ns === '127.0.0.53') {
    return {
      kind: 'resolved',
      reason: `${RESOLV_CONF} points at 127.0.0.53 and systemd-resolved runs`,
    };
  }
  if (f.dhclientLease !== undefined) {
    return { kind: 'dhclient', reason: `dhclient manages the leases (${f.dhclientLease})` };
  }
  return { kind: 'resolv.conf', reason: `${RESOLV_CONF} is a plain file` };
}

export function renderResolvedDropIn(routing: Routing): string {
  const singleLabel = routing.domains.some((d) => !d.includes('.'));
  const lines = [
    MANAGED_MARK,
    '# Sends the mesh names to dnsmasq on 127.0.0.1; `istio-node-agent dns clean` removes this file.',
    '[Resolve]',
    'DNS=127.0.0.1',
    `Domains=${routing.domains.map((d) => `~${d}`).join(' ')}`,
  ];
  // resolved keeps single-label names (istio-pilot) off unicast DNS unless told otherwise.
  if (singleLabel) lines.push('ResolveUnicastSingleLabel=yes');
  return lines.join('\n') + '\n';
}

export function planResolver(
  choice: ResolverChoice,
  f: ResolverFacts,
  routing: Routing,
): ResolverPlan {
  const edits: FileEdit[] = [];
  const notes: string[] = [];
  let owned: string[] = [];
  let upstreamResolvFile: string | undefined;
  switch (choice.kind) {
    case 'dhclient': {
      owned = [DHCLIENT_CONF, RESOLV_CONF];
      const conf = f.dhclientConf;
      if (conf.kind === 'symlink') {
        notes.push(`${DHCLIENT_CONF} is a symlink; left alone`);
      } else if (!hasDhclientPrepend(text(conf) ?? '')) {
        const before = text(conf) ?? '';
        const block = (before === '' || before.endsWith('\n') ? '' : '\n') + DHCLIENT_BLOCK;
        edits.push(
          edit(
            DHCLIENT_CONF,
            conf.kind === 'absent' ? 'create' : 'append',
            conf,
            before + block,
            block,
          ),
        );
      }
      // dhclient writes the prepend into resolv.conf at its next renewal; until then, and
      // without touching the interface, put the same line into resolv.conf now.
      const rc = f.resolvConf;
      if (rc.kind === 'file') {
        pushResolvConfPrepend(edits, notes, rc);
      } else if (rc.kind === 'symlink') {
        notes.push(`${RESOLV_CONF} is a symlink; dnsmasq is used from the next DHCP renewal`);
      }
      break;
    }
    case 'resolv.conf': {
      owned = [RESOLV_CONF];
      const rc = f.resolvConf;
      if (rc.kind === 'file') {
        pushResolvConfPrepend(edits, notes, rc);
      } else if (rc.kind === 'absent') {
        edits.push(edit(RESOLV_CONF, 'create', rc, RESOLV_CONF_BLOCK, RESOLV_CONF_BLOCK));
      } else {
        const end = f.resolvConfFinal;
        const target = end && end.state.kind === 'file' ? end.state.bytes.toString('utf8') : '';
        if (firstNameserver(target) !== '127.0.0.1') {
          edits.push({
            path: RESOLV_CONF,
            action: 'replace-symlink',
            before: rc,
            after: RESOLV_CONF_BLOCK + target,
            mode: 0o644,
            uid: undefined,
            gid: undefined,
            block: RESOLV_CONF_BLOCK,
          });
          notes.push(
            `${RESOLV_CONF} links to ${end?.hostPath ?? rc.target}; it becomes a file (a copy with ` +
              `127.0.0.1 first), so whatever writes ${end?.hostPath ?? rc.target} no longer reaches ` +
              `the resolver until \`dns clean\` puts the link back`,
          );
        }
      }
      break;
    }
    case 'resolved': {
      owned = [RESOLVED_DROP_IN];
      upstreamResolvFile = RESOLVED_UPLINK_RESOLV_CONF;
      const want = renderResolvedDropIn(routing);
      const cur = f.resolvedDropIn;
      if (text(cur) !== want) {
        edits.push(
          edit(
            RESOLVED_DROP_IN,
            cur.kind === 'absent' ? 'create' : 'replace',
            cur,
            want,
            undefined,
          ),
        );
      }
      if (!f.resolvedRunning)
        notes.push('systemd-resolved is not running; the drop-in takes effect when it starts');
      break;
    }
    case 'resolvconf':
      notes.push(
        "the dnsmasq package's service registers 127.0.0.1 with resolvconf itself; nothing to change",
      );
      break;
    case 'none':
      break;
  }
  return {
    ...choice,
    owned,
    edits,
    reloadResolved: edits.some((e) => e.path === RESOLVED_DROP_IN),
    upstreamResolvFile,
    notes,
  };
}

function pushResolvConfPrepend(
  edits: FileEdit[],
  notes: string[],
  rc: FileState & { kind: 'file' },
): void {
  const cur = rc.bytes.toString('utf8');
  if (firstNameserver(cur) === '127.0.0.1') return;
  edits.push(edit(RESOLV_CONF, 'prepend', rc, RESOLV_CONF_BLOCK + cur, RESOLV_CONF_BLOCK));
  if (/^\s*options\s.*\brotate\b/m.test(cur)) {
    notes.push(
      `${RESOLV_CONF} has "options rotate": programs ask dnsmasq only some of the time; remove rotate`,
    );
  }
  if (nameservers(cur).length >= 3) {
    notes.push(
      `${RESOLV_CONF} lists 3 or more servers; the C library reads only the first 3, so the last ` +
        'one is used only by dnsmasq from now on',
    );
  }
}

function edit(
  p: string,
  action: FileEdit['action'],
  before: FileState,
  after: string,
  block: string | undefined,
): FileEdit {
  const own = before.kind === 'file';
  return {
    path: p,
    action,
    before,
    after,
    mode: own ? before.mode : 0o644,
    uid: own ? before.uid : undefined,
    gid: own ? before.gid : undefined,
    block,
  };
}

/** Removes the first occurrence of `block` from `content`; undefined when it is not there. */
export function removeBlock(content: string, block: string): string | undefined {
  const i = content.indexOf(block);
  if (i < 0) return undefined;
  return content.slice(0, i) + content.slice(i + block.length);
}
