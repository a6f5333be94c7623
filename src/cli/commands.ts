import type { CommandModule } from './context';

export interface CommandEntry {
  readonly summary: string;
  /** Loaded on demand so a command pays only for the modules it needs. */
  readonly load: () => Promise<CommandModule>;
}

export const COMMANDS: Record<string, CommandEntry> = {
  run: { summary: 'run the daemon (what the systemd unit starts)', load: () => import('./run') },
  dev: {
    summary: 'run everything against an embedded CA, with no change to the host',
    load: () => import('./dev'),
  },
  iptables: {
    summary: 'traffic capture rules: plan, apply, clean, diff',
    load: () => import('./iptables'),
  },
  dns: { summary: 'cluster DNS through dnsmasq: plan, apply, clean', load: () => import('./dns') },
  status: { summary: "show the running daemon's status", load: () => import('./status') },
  check: {
    summary: 'self-check: config, certificates, CA, capture, DNS, sidecar',
    load: () => import('./check'),
  },
  'dev-ca': {
    summary: 'serve the embedded Citadel-compatible CA (tests and labs)',
    load: () => import('./dev-ca'),
  },
  cluster: {
    summary: 'on a workstation: cluster.env, DNS, certificates, VM bundles and setup, register',
    load: () => import('./cluster/index'),
  },
  version: { summary: 'print the version', load: () => import('./version') },
};
