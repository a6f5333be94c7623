import type { CommandModule } from './context';

export interface CommandEntry {
  readonly summary: string;
  /** Loaded on demand so a command pays only for the modules it needs. */
  readonly load: () => Promise<CommandModule>;
}

export const COMMANDS: Record<string, CommandEntry> = {
  run: { summary: 'run the daemon (what the systemd unit starts)', load: () => import('./run') },
  status: { summary: "show the running daemon's status", load: () => import('./status') },
  version: { summary: 'print the version', load: () => import('./version') },
  dns: { summary: 'cluster DNS through dnsmasq: plan, apply, clean', load: () => import('./dns') },
};
