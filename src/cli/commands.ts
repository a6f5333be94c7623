import type { CommandModule } from './context';

export interface CommandEntry {
  readonly summary: string;
  /** Loaded on demand so a command pays only for the modules it needs. */
  readonly load: () => Promise<CommandModule>;
}

export const COMMANDS: Record<string, CommandEntry> = {
  run: { summary: 'run the daemon (what the systemd unit starts)', load: () => import('./run') },
  iptables: {
    summary: 'traffic capture rules: plan, apply, clean, diff',
    load: () => import('./iptables'),
  },
  status: { summary: "show the running daemon's status", load: () => import('./status') },
  version: { summary: 'print the version', load: () => import('./version') },
};
